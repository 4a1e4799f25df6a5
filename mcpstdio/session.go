package mcpstdio

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/mcpsse/caddy-mcp-sse/session"
	"github.com/mcpsse/caddy-mcp-sse/stdio"
)

// Why a session ended: the reason label of
// caddy_mcp_stdio_processes_exited_total.
const (
	ReasonExited   = "exited"            // the process exited on its own, status 0
	ReasonCrashed  = "crashed"           // it exited on its own otherwise
	ReasonTooLarge = "message_too_large" // it wrote a line over max_message_size
	ReasonDeleted  = "deleted"           // the client's DELETE
	ReasonIdle     = "idle_timeout"
	ReasonStartup  = "startup_timeout" // initialize not answered in time
	ReasonStdin    = "stdin_failed"    // a message could not be written to it
	ReasonAdmin    = "admin"           // DELETE on the admin API
	ReasonShutdown = "shutdown"        // Caddy is exiting
)

// maxBacklog bounds the messages a session keeps while no stream is open
// to carry them (max_queued_bytes bounds their bytes).
const maxBacklog = 1024

// streamBuffer is how many messages a stream holds before the process's
// output waits for the client to read.
const streamBuffer = 64

// mcpSession is one MCP session: one process, and the HTTP streams its
// messages go out on.
type mcpSession struct {
	id       string
	identity string
	client   string
	command  string
	proc     *stdio.Process
	logger   *zap.Logger
	reg      *registry
	// keyed is set on a process serving sessionless requests (by
	// process_key), nil on a legacy session's.
	keyed *keyedState

	// sendTimeout bounds one write to the process's stdin, and the wait
	// of a message for room in a full stream.
	sendTimeout time.Duration
	// maxQueued bounds the bytes of messages held for one stream, and
	// those of the backlog.
	maxQueued int64

	// lastActive is when the client last showed itself (a request naming
	// the session, a message to the process, a request in flight), in
	// unix nanoseconds. What the process sends on its own does not count:
	// a session whose client went away must still idle out.
	lastActive atomic.Int64
	started    time.Time

	mu         sync.Mutex
	calls      map[string]*call // the client's requests awaiting a response, by id
	tokens     map[string]*call // their progress tokens
	standalone *stream          // the GET stream, if one is open
	backlog    [][]byte         // messages with no stream to go on yet
	backlogLen int64            // their bytes
	seq        uint64
	ended      bool
	reason     string
	exit       *stdio.Exit // set before endedCh closes when the process exited on its own

	endedCh chan struct{} // closed when the session ends
	gone    chan struct{} // closed once its process is gone
}

// call is a request of the client awaiting the process's response.
type call struct {
	id    json.RawMessage
	key   string
	token string
	st    *stream
	seq   uint64
	// modern is set on a sessionless request's call.
	modern *modernCall
}

// stream is one HTTP response carrying messages: a POST's (answering its
// requests) or the standalone GET stream.
type stream struct {
	out     chan item
	done    chan struct{} // closed when its handler returns
	sse     bool          // the client accepts text/event-stream
	pending int           // its requests not answered yet (under the session's mu)

	// cut is closed when the stream is closed as a slow consumer: its
	// client let it stay full for send_timeout.
	cut     chan struct{}
	cutOnce sync.Once

	// queued is the bytes of the messages in out and of the one being
	// written; room is signalled when the handler has written one.
	qmu    sync.Mutex
	queued int64
	room   chan struct{}
}

// item is one message for a stream. last marks the response that answers
// the stream's last pending request: the stream ends after it. An item
// without msg ends the stream with nothing more to send (its last request
// was cancelled).
type item struct {
	msg  []byte
	resp bool
	last bool
	// input asks the stream's handler to answer its request with an
	// InputRequiredResult (sessionless requests).
	input bool
}

func newStream(sse bool) *stream {
	return &stream{out: make(chan item, streamBuffer), done: make(chan struct{}), sse: sse,
		cut: make(chan struct{}), room: make(chan struct{}, 1)}
}

// open reports whether the stream can still carry messages.
func (st *stream) open() bool { return !closed(st.done) && !closed(st.cut) }

var (
	errStreamGone = errors.New("the stream has ended")
	errSlow       = errors.New("the stream stayed full for send_timeout")
)

// put queues it on the stream once its bytes fit within limit (a message
// always fits an empty stream), waiting at most wait for the client to
// make room by reading.
func (st *stream) put(it item, limit int64, wait time.Duration) error {
	n := int64(len(it.msg))
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		st.qmu.Lock()
		if st.queued == 0 || st.queued+n <= limit {
			st.queued += n
			st.qmu.Unlock()
			break
		}
		st.qmu.Unlock()
		select {
		case <-st.room:
		case <-st.done:
			return errStreamGone
		case <-st.cut:
			return errStreamGone
		case <-timer.C:
			return errSlow
		}
	}
	var err error
	select {
	case st.out <- it:
		return nil
	case <-st.done:
		err = errStreamGone
	case <-st.cut:
		err = errStreamGone
	case <-timer.C:
		err = errSlow
	}
	st.written(len(it.msg))
	return err
}

// written gives back the bytes of a message the handler has written (or
// will not write).
func (st *stream) written(n int) {
	st.qmu.Lock()
	st.queued -= int64(n)
	st.qmu.Unlock()
	select {
	case st.room <- struct{}{}:
	default:
	}
}

// cutOff closes the stream as a slow consumer.
func (st *stream) cutOff() { st.cutOnce.Do(func() { close(st.cut) }) }

// idKey is a JSON-RPC id (or progress token) as a map key: numbers by
// value, so an id the server re-encodes (1.0 as 1) still matches.
func idKey(id json.RawMessage) string {
	id = bytes.TrimSpace(id)
	if len(id) > 0 && id[0] != '"' {
		if f, err := strconv.ParseFloat(string(id), 64); err == nil {
			return "n:" + strconv.FormatFloat(f, 'g', -1, 64)
		}
	}
	return "s:" + string(id)
}

// outEnvelope is what routing reads of a message from the process.
type outEnvelope struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params struct {
		ProgressToken json.RawMessage `json:"progressToken"`
	} `json:"params"`
}

func (s *mcpSession) touch() { s.lastActive.Store(time.Now().UnixNano()) }

// route delivers one message from the process. It runs on the process's
// stdout reader, one message at a time, in the order they were written;
// while a stream holds max_queued_bytes it waits, which holds the
// process's output back until the client reads, for send_timeout at most:
// then the stream is cut as a slow consumer and the message goes
// elsewhere (a response is dropped with its stream).
func (s *mcpSession) route(msg []byte) {
	var env outEnvelope
	if err := json.Unmarshal(msg, &env); err != nil {
		// stdio passes only JSON-RPC objects; params of another shape
		// (an array) still route, without a progress token.
		env = outEnvelope{}
		var bare struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		_ = json.Unmarshal(msg, &bare)
		env.ID, env.Method = bare.ID, bare.Method
	}
	if s.keyed != nil {
		s.routeKeyed(msg, &env)
		return
	}
	for {
		st, it, ok := s.pick(msg, &env)
		if !ok {
			return
		}
		err := st.put(it, s.maxQueued, s.sendTimeout)
		if err == nil {
			return
		}
		if errors.Is(err, errSlow) {
			// As mcp_sse closes a session whose queue stays full: the
			// process's output waits for no client longer than that. The
			// stream's handler logs it.
			st.cutOff()
		}
		if it.resp {
			s.logger.Debug("dropping a response: its request's stream has ended",
				zap.String("session", session.ShortID(s.id)), zap.ByteString("id", env.ID))
			return
		}
		// Pick again: the ended stream is no candidate any more.
	}
}

// pick decides where a message goes. ok is false when it was kept in the
// backlog or has nowhere to go.
func (s *mcpSession) pick(msg []byte, env *outEnvelope) (*stream, item, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return nil, item{}, false
	}
	isRequest := env.Method != "" && env.ID != nil && string(env.ID) != "null"
	switch {
	case env.Method == "":
		// A response to one of the client's requests.
		c := s.calls[idKey(env.ID)]
		if c == nil {
			s.logger.Debug("dropping a response to no request in flight",
				zap.String("session", session.ShortID(s.id)), zap.ByteString("id", env.ID))
			return nil, item{}, false
		}
		s.removeCall(c)
		c.st.pending--
		return c.st, item{msg: msg, resp: true, last: c.st.pending == 0}, true
	case !isRequest:
		// A notification: progress goes to the request that owns its
		// token; others to the only request in flight.
		if env.Params.ProgressToken != nil {
			if c := s.tokens[idKey(env.Params.ProgressToken)]; c != nil && c.st.sse && c.st.open() {
				return c.st, item{msg: msg}, true
			}
		}
		if c := s.onlyCall(); c != nil && c.st.sse && c.st.open() {
			return c.st, item{msg: msg}, true
		}
	}
	// Server-to-client requests and notifications of no request: the
	// standalone stream, else a request stream in flight, else later.
	if st := s.standalone; st != nil && st.open() {
		return st, item{msg: msg}, true
	}
	if c := s.oldestCall(); c != nil {
		return c.st, item{msg: msg}, true
	}
	if len(s.backlog) >= maxBacklog || (len(s.backlog) > 0 && s.backlogLen+int64(len(msg)) > s.maxQueued) {
		s.logger.Warn("dropping a message: no stream open and the backlog is full",
			zap.String("session", session.ShortID(s.id)), zap.Int("messages", len(s.backlog)),
			zap.Int64("bytes", s.backlogLen), zap.Int64("max_queued_bytes", s.maxQueued))
		return nil, item{}, false
	}
	s.backlog = append(s.backlog, msg)
	s.backlogLen += int64(len(msg))
	return nil, item{}, false
}

func closed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// onlyCall is the one request in flight, if exactly one is.
func (s *mcpSession) onlyCall() *call {
	if len(s.calls) != 1 {
		return nil
	}
	for _, c := range s.calls {
		return c
	}
	return nil
}

// oldestCall is the request in flight that came first whose stream can
// carry other messages.
func (s *mcpSession) oldestCall() *call {
	var oldest *call
	for _, c := range s.calls {
		if c.st.sse && c.st.open() && (oldest == nil || c.seq < oldest.seq) {
			oldest = c
		}
	}
	return oldest
}

func (s *mcpSession) removeCall(c *call) {
	delete(s.calls, c.key)
	if c.token != "" && s.tokens[c.token] == c {
		delete(s.tokens, c.token)
	}
}

// inMessage is what the session reads of a message the client posted.
type inMessage struct {
	raw   json.RawMessage
	id    json.RawMessage
	token json.RawMessage
	req   bool
}

// Why register refused a POST's requests.
var (
	errEnded     = errors.New("the session has ended")
	errBusy      = errors.New("max_inflight reached")
	errDuplicate = errors.New("request id already in flight")
)

// register adds a POST's requests, so that their responses find the
// stream before the process can write them. It returns the backlog for
// the stream to carry first when it is the only stream that could. It
// refuses them all with errEnded when the session has ended, errBusy when
// they would make more than maxInflight (<= 0: no limit) in flight, and
// errDuplicate with the id when one is already in flight.
func (s *mcpSession) register(st *stream, msgs []inMessage, maxInflight int) (backlog [][]byte, dup json.RawMessage, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return nil, nil, errEnded
	}
	requests := 0
	for i, m := range msgs {
		if !m.req {
			continue
		}
		requests++
		if s.calls[idKey(m.id)] != nil {
			return nil, m.id, errDuplicate
		}
		for _, n := range msgs[:i] {
			if n.req && idKey(n.id) == idKey(m.id) {
				return nil, m.id, errDuplicate
			}
		}
	}
	if maxInflight > 0 && len(s.calls)+requests > maxInflight {
		return nil, nil, errBusy
	}
	for _, m := range msgs {
		if !m.req {
			continue
		}
		s.seq++
		// A copy: the id outlives the POST's body, whose bytes are given
		// back once the process has taken it.
		c := &call{id: bytes.Clone(m.id), key: idKey(m.id), st: st, seq: s.seq}
		if m.token != nil {
			c.token = idKey(m.token)
			s.tokens[c.token] = c
		}
		s.calls[c.key] = c
		st.pending++
	}
	if st.sse && (s.standalone == nil || !s.standalone.open()) && len(s.backlog) > 0 {
		backlog, s.backlog, s.backlogLen = s.backlog, nil, 0
	}
	return backlog, nil, nil
}

// unregister forgets the requests of a stream whose client went away:
// their responses will have nowhere to go.
func (s *mcpSession) unregister(st *stream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.calls {
		if c.st == st {
			s.removeCall(c)
		}
	}
}

// unanswered removes and returns the requests of st still awaiting a
// response, in the order they came.
func (s *mcpSession) unanswered(st *stream) []*call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var list []*call
	for _, c := range s.calls {
		if c.st == st {
			list = append(list, c)
		}
	}
	for _, c := range list {
		s.removeCall(c)
	}
	sortCalls(list)
	return list
}

func sortCalls(list []*call) {
	for i := 1; i < len(list); i++ {
		for j := i; j > 0 && list[j].seq < list[j-1].seq; j-- {
			list[j], list[j-1] = list[j-1], list[j]
		}
	}
}

// openStandalone makes st the session's GET stream and returns the
// backlog it is to carry first; false if one is open already.
func (s *mcpSession) openStandalone(st *stream) ([][]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.standalone != nil && s.standalone.open() {
		return nil, false
	}
	s.standalone = st
	backlog := s.backlog
	s.backlog, s.backlogLen = nil, 0
	return backlog, true
}

func (s *mcpSession) closeStandalone(st *stream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.standalone == st {
		s.standalone = nil
	}
}

// inFlight reports whether any request awaits a response.
func (s *mcpSession) inFlight() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls) > 0 || (s.keyed != nil && len(s.keyed.listeners) > 0)
}

// send writes a message to the process.
func (s *mcpSession) send(msg []byte) error {
	s.touch()
	return s.proc.Send(msg, s.sendTimeout)
}

// end ends the session for reason, once: every stream sees it, the
// session leaves the registry (so its id answers 404), and the process is
// stopped.
func (s *mcpSession) end(reason string, exit *stdio.Exit) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.ended = true
	s.reason = reason
	s.exit = exit
	close(s.endedCh)
	s.mu.Unlock()
	s.reg.remove(s)
	s.proc.StopAsync()
}

// endInfo says why the session ended, for the error its requests in
// flight receive.
func (s *mcpSession) endInfo() (reason string, exit *stdio.Exit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reason, s.exit
}

// watch ends the session when its process exits or it has been idle too
// long, then waits for the process to be gone and reports its exit.
func (s *mcpSession) watch(idle time.Duration) {
	var tick <-chan time.Time
	if idle > 0 {
		t := time.NewTicker(min(idle/4, time.Second))
		defer t.Stop()
		tick = t.C
	}
loop:
	for {
		select {
		case <-s.proc.Done():
			exit := s.proc.Exit()
			reason := ReasonCrashed
			switch {
			case exit.Cause != nil:
				reason = ReasonTooLarge
			case exit.Code == 0 && exit.Signal == "":
				reason = ReasonExited
			}
			s.end(reason, &exit)
			break loop
		case <-s.endedCh:
			<-s.proc.Done()
			break loop
		case now := <-tick:
			if s.inFlight() {
				// Idle time starts when the last request is answered.
				s.touch()
				continue
			}
			if now.Sub(time.Unix(0, s.lastActive.Load())) >= idle {
				s.end(ReasonIdle, nil)
			}
		}
	}
	exit := s.proc.Exit()
	s.reg.gone(s)
	in, out := s.proc.Counts()
	fields := []zap.Field{
		zap.String("session", session.ShortID(s.id)),
		zap.Int("pid", s.proc.PID()),
		zap.String("command", s.command),
		zap.String("reason", s.reason),
		zap.String("exit", exit.String()),
		zap.String("stop_stage", exit.Stage),
		zap.Duration("duration", time.Since(s.started)),
		zap.Int64("messages_in", in),
		zap.Int64("messages_out", out),
	}
	switch s.reason {
	case ReasonCrashed, ReasonTooLarge, ReasonStartup, ReasonStdin:
		s.logger.Error("process ended", fields...)
	default:
		s.logger.Info("process ended", fields...)
	}
	metrics.exited.WithLabelValues(s.reason).Inc()
	close(s.gone)
}

// progressToken is params._meta.progressToken of a client's request, if
// it has one: the token its progress notifications will carry.
func progressToken(raw json.RawMessage) json.RawMessage {
	var env struct {
		Params struct {
			Meta struct {
				ProgressToken json.RawMessage `json:"progressToken"`
			} `json:"_meta"`
		} `json:"params"`
	}
	if json.Unmarshal(raw, &env) != nil || string(env.Params.Meta.ProgressToken) == "null" {
		return nil
	}
	return env.Params.Meta.ProgressToken
}

// cancel forgets a request the client cancelled (notifications/cancelled):
// the server need not answer it, so its stream must not wait for an
// answer. A stream left with nothing to wait for ends.
func (s *mcpSession) cancel(id json.RawMessage) {
	s.mu.Lock()
	c := s.calls[idKey(id)]
	if c == nil {
		s.mu.Unlock()
		return
	}
	s.removeCall(c)
	c.st.pending--
	last := c.st.pending == 0
	s.mu.Unlock()
	if last {
		select {
		case c.st.out <- item{last: true}:
		case <-c.st.done:
		}
	}
}

// cancelledID is params.requestId of a notifications/cancelled message.
func cancelledID(raw json.RawMessage) json.RawMessage {
	var env struct {
		Method string `json:"method"`
		Params struct {
			RequestID json.RawMessage `json:"requestId"`
		} `json:"params"`
	}
	if json.Unmarshal(raw, &env) != nil || env.Method != "notifications/cancelled" {
		return nil
	}
	return env.Params.RequestID
}
