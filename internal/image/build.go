package image

import (
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// GoBuild compiles the Go package pkg (run from dir) into a static binary
// at out for the platform: CGO_ENABLED=0, -trimpath, symbol tables
// stripped. go is the go command ("go" when empty).
func GoBuild(ctx context.Context, goCmd, dir, pkg, out string, p v1.Platform) error {
	if goCmd == "" {
		goCmd = "go"
	}
	cmd := exec.CommandContext(ctx, goCmd, "build", "-trimpath", "-ldflags", "-s -w", "-o", out, pkg)
	cmd.Dir = dir
	env := append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture)
	if p.Architecture == "arm" && p.Variant != "" {
		env = append(env, "GOARM="+p.Variant[1:])
	}
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s for %s/%s: %w\n%s", pkg, p.OS, p.Architecture, err, stderr.String())
	}
	return CheckStatic(out, p)
}

// goArch maps GOARCH names to ELF machines.
func goArch(m elf.Machine) string {
	switch m {
	case elf.EM_X86_64:
		return "amd64"
	case elf.EM_AARCH64:
		return "arm64"
	case elf.EM_ARM:
		return "arm"
	case elf.EM_386:
		return "386"
	case elf.EM_PPC64:
		return "ppc64le"
	case elf.EM_S390:
		return "s390x"
	case elf.EM_RISCV:
		return "riscv64"
	default:
		return m.String()
	}
}

// CheckStatic fails unless the file at path is a statically linked ELF
// executable for the platform: an image with no C library in it cannot
// run anything that needs a dynamic loader.
func CheckStatic(path string, p v1.Platform) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s: not an ELF executable: %w", path, err)
	}
	defer f.Close()
	if got := goArch(f.Machine); got != p.Architecture {
		return fmt.Errorf("%s: built for %s, want %s", path, got, p.Architecture)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("%s: dynamically linked (has an interpreter); build with CGO_ENABLED=0", path)
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return fmt.Errorf("%s: reading imported libraries: %w", path, err)
	}
	if len(libs) > 0 {
		return fmt.Errorf("%s: needs shared libraries %v; build with CGO_ENABLED=0", path, libs)
	}
	return nil
}
