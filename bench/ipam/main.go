// Command ipam measures the KeeperLB allocator (internal/ipam) and prints
// the results as Markdown: cost per allocation at each tenth of a pool's
// fill, total fill time, heap per allocated address, and a comparison with
// a first-fit allocator that scans its pool from the start for every
// Service, as MetalLB does.
//
// Usage:
//
//	go run ./bench/ipam          # full run, well under a minute
//	go run ./bench/ipam -quick   # small sizes, a few seconds
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/keeperlb/keeperlb/internal/config"
	"github.com/keeperlb/keeperlb/internal/ipam"
)

type fillCase struct {
	label  string
	prefix string
	fam    ipam.Family
	n      int
}

type fillResult struct {
	decile   [10]time.Duration // per allocation
	total    time.Duration
	heapPerN float64
}

func main() {
	quick := flag.Bool("quick", false, "small sizes for a fast smoke run")
	flag.Parse()

	cases := []fillCase{
		{"IPv4 /16, 60,000 allocations", "10.0.0.0/16", ipam.IPv4, 60_000},
		{"IPv6 /64, 100,000 allocations", "2001:db8::/64", ipam.IPv6, 100_000},
	}
	baselineN := []int{10_000, 20_000}
	reps := 5
	if *quick {
		cases[0].n, cases[0].label = 6_000, "IPv4 /16, 6,000 allocations"
		cases[1].n, cases[1].label = 10_000, "IPv6 /64, 10,000 allocations"
		baselineN = []int{2_000, 4_000}
		reps = 1
	}

	printMachine()

	results := make([]fillResult, len(cases))
	paused := make([]fillResult, len(cases))
	for i, c := range cases {
		results[i] = measureFill(c, reps, false)
		paused[i] = measureFill(c, reps, true)
	}

	fmt.Printf("## KeeperLB: ns per allocation by pool fill (median of %d run(s))\n", reps)
	fmt.Println()
	fmt.Println("The \"GC paused\" columns fill with the garbage collector off, isolating the")
	fmt.Println("allocator's own cost from GC assists, which land in whichever tenth a collection")
	fmt.Println("happens to start in.")
	fmt.Println()
	header := "| fill |"
	sep := "|---|"
	for _, c := range cases {
		header += " " + c.label + " | same, GC paused |"
		sep += "---:|---:|"
	}
	fmt.Println(header)
	fmt.Println(sep)
	for d := range 10 {
		row := fmt.Sprintf("| %d–%d%% |", d*10, d*10+10)
		for i := range cases {
			row += fmt.Sprintf(" %d | %d |", results[i].decile[d].Nanoseconds(), paused[i].decile[d].Nanoseconds())
		}
		fmt.Println(row)
	}
	fmt.Println()
	fmt.Println("| case | total fill time | heap in use per allocated address |")
	fmt.Println("|---|---:|---:|")
	for i, c := range cases {
		fmt.Printf("| %s | %s | %.0f B |\n", c.label, results[i].total.Round(time.Microsecond), results[i].heapPerN)
	}
	fmt.Println()

	fmt.Println("## Baseline: first-fit scan from the pool start (MetalLB's approach) vs KeeperLB, IPv4 /16")
	fmt.Println()
	fmt.Println("| allocations | first-fit total | KeeperLB total | first-fit / KeeperLB |")
	fmt.Println("|---:|---:|---:|---:|")
	for _, n := range baselineN {
		naive := naiveFill("10.0.0.0/16", n)
		keeper := measureFill(fillCase{prefix: "10.0.0.0/16", fam: ipam.IPv4, n: n}, 1, false).total
		fmt.Printf("| %d | %s | %s | %.0f× |\n", n, naive.Round(time.Millisecond), keeper.Round(time.Microsecond), float64(naive)/float64(keeper))
	}
}

func printMachine() {
	fmt.Println("## Machine")
	fmt.Println()
	fmt.Printf("- OS/arch: %s/%s, CPUs: %d\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	fmt.Printf("- CPU: %s\n", cpuModel())
	fmt.Printf("- Go: %s\n", runtime.Version())
	fmt.Println()
}

// cpuModel reads the first "model name" of /proc/cpuinfo; other systems
// simply report "unknown".
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func poolFor(prefix string) *config.Pool {
	p := netip.MustParsePrefix(prefix).Masked()
	return &config.Pool{
		Name:       "bench",
		AutoAssign: true,
		Ranges:     []config.Range{{First: p.Addr(), Last: lastAddr(p)}},
		CIDRs:      []netip.Prefix{p},
	}
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func services(n int, fam ipam.Family) []ipam.Service {
	out := make([]ipam.Service, n)
	for i := range out {
		out[i] = ipam.Service{
			Key:       fmt.Sprintf("bench/svc-%d", i),
			Namespace: "bench",
			Families:  []ipam.Family{fam},
			Ports:     []ipam.Port{{Protocol: "TCP", Port: 80}},
		}
	}
	return out
}

// measureFill fills a fresh allocator reps times and keeps the median of
// each figure, which damps noise from other work on the machine.
func measureFill(c fillCase, reps int, gcPaused bool) fillResult {
	svcs := services(c.n, c.fam)
	pools := []*config.Pool{poolFor(c.prefix)}
	var deciles [10][]time.Duration
	var totals []time.Duration
	var heap float64
	for range reps {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		a := ipam.New()
		a.SetPools(pools)
		if gcPaused {
			debug.SetGCPercent(-1)
		}
		var total time.Duration
		for d := range 10 {
			lo, hi := d*c.n/10, (d+1)*c.n/10
			start := time.Now()
			for i := lo; i < hi; i++ {
				if _, err := a.Ensure(&svcs[i]); err != nil {
					fmt.Fprintln(os.Stderr, "allocation failed:", err)
					os.Exit(1)
				}
			}
			el := time.Since(start)
			total += el
			deciles[d] = append(deciles[d], el/time.Duration(max(hi-lo, 1)))
		}
		totals = append(totals, total)
		if gcPaused {
			debug.SetGCPercent(100)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		heap = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(c.n)
		runtime.KeepAlive(a)
	}
	var r fillResult
	for d := range 10 {
		r.decile[d] = median(deciles[d])
	}
	r.total = median(totals)
	r.heapPerN = heap
	return r
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// naiveFill is the baseline: every allocation walks the pool from its
// first address until it finds one missing from the in-use map.
func naiveFill(prefix string, n int) time.Duration {
	p := netip.MustParsePrefix(prefix).Masked()
	last := lastAddr(p)
	used := make(map[netip.Addr]string)
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("bench/svc-%d", i)
	}
	runtime.GC()
	start := time.Now()
	for _, k := range keys {
		for ip := p.Addr(); ip.IsValid() && ip.Compare(last) <= 0; ip = ip.Next() {
			if _, taken := used[ip]; !taken {
				used[ip] = k
				break
			}
		}
	}
	return time.Since(start)
}
