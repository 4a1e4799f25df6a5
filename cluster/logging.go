package cluster

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// go-redis writes its own lines (a pooled connection it could not close,
// a failed re-authentication...) through one process-wide logger, to
// stderr by default: outside the instance's logs, in another format.
// RouteRedisLogs sends them to log instead.

var redisLog atomic.Pointer[func(string)]

// RouteRedisLogs makes every line go-redis logs, in this process, a call
// of log (the newest call of RouteRedisLogs wins: go-redis has one logger
// for the process). A nil log drops them.
func RouteRedisLogs(log func(line string)) {
	if log == nil {
		log = func(string) {}
	}
	redisLog.Store(&log)
	routeOnce.Do(func() { redis.SetLogger(redisLogger{}) })
}

// routeOnce installs the forwarding logger into go-redis once.
var routeOnce sync.Once

type redisLogger struct{}

func (redisLogger) Printf(_ context.Context, format string, v ...any) {
	if f := redisLog.Load(); f != nil {
		(*f)(strings.TrimSpace(fmt.Sprintf(format, v...)))
	}
}
