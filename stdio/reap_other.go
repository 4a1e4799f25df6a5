//go:build !linux

package stdio

func becomeSubreaper() {}
func reapOrphans()     {}

func startLeader(start func() (int, error)) error {
	_, err := start()
	return err
}

func leaderDone(int) {}
