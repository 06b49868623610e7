package lab

// SetOwnerForTest rewrites the recorded owner of a lab, so that tests can
// make a lab look owned by another process.
func SetOwnerForTest(name string, pid int, detached bool) error {
	s, err := readState(statePath(name))
	if err != nil {
		return err
	}
	start, err := processStart(pid)
	if err != nil {
		return err
	}
	s.OwnerPID, s.OwnerStart, s.Detached = pid, start, detached
	return writeState(s)
}
