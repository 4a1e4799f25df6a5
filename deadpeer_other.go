//go:build !linux

package mcpsse

import (
	"errors"
	"net"
	"time"
)

// setUserTimeout is a no-op where TCP_USER_TIMEOUT does not exist; there a
// dead peer is found when the send buffer fills and send_timeout passes.
func setUserTimeout(*net.TCPConn, time.Duration) error { return errors.ErrUnsupported }
