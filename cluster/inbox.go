package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Posted is one POST as it waits in a session's inbox: the body and what
// the owner needs of the request that carried it to dispatch it as if it
// had arrived there.
type Posted struct {
	Body       []byte      `json:"b"`
	Header     http.Header `json:"h,omitempty"`
	Host       string      `json:"o,omitempty"`
	RemoteAddr string      `json:"r,omitempty"`
	TLS        bool        `json:"t,omitempty"`
	// Values are the string placeholders the handlers before mcp_sse
	// set on the POST (the authenticated user above all).
	Values map[string]string `json:"v,omitempty"`
	Vars   map[string]any    `json:"w,omitempty"`
	// At is when the POST was taken (Unix nanoseconds), for the metric of
	// how long messages take to cross instances.
	At   int64  `json:"a"`
	From string `json:"f,omitempty"`
	// Nonce names the POST, so that its owner dispatches it once when it
	// lands in the inbox twice (a write retried after its reply was lost)
	// or after it was dispatched without the inbox (Redis failed to
	// confirm the write, which it may still have made).
	Nonce string `json:"k,omitempty"`
}

// Entry is a Posted read back from the inbox, with its entry id.
type Entry struct {
	ID string
	Posted
}

// Post outcomes.
var (
	// ErrForbidden: the session belongs to another identity.
	ErrForbidden = errors.New("cluster: the session belongs to another identity")
	// ErrInboxFull: the session has its limit of messages in flight.
	ErrInboxFull = errors.New("cluster: too many messages in flight on the session")
	// ErrInboxBytes: the session's inbox holds its limit of bytes.
	ErrInboxBytes = errors.New("cluster: too many bytes waiting on the session")
)

// Load is what one POST adds to a session's inbox, and the inbox's
// bounds, counted as one instance counts a session's messages in flight.
type Load struct {
	// Work is the POST's requests and notifications, Responses its
	// responses to the server's requests; each kind is bounded apart.
	Work, Responses int
	// Bytes is the POST's body's length.
	Bytes int64
	// MaxInflight bounds each kind of message the inbox holds (<= 0:
	// no bound): an entry holds its messages until it is acked.
	MaxInflight int
	// MaxBytes bounds the bytes of the bodies the inbox holds (<= 0: no
	// bound); an empty inbox takes any one POST.
	MaxBytes int64
}

// PostResult says where a posted message went.
type PostResult struct {
	Owner string
	// Listening is false when the owner's doorbell had no listener: the
	// owner is gone, and the message waits for a takeover.
	Listening bool
	// Entry is the message's inbox entry id, Prev that of the entry
	// posted before it ("" for the first).
	Entry, Prev string
}

// Post appends p to the inbox of session id, after checking that it
// belongs to identity on scope and that the inbox has room for load,
// and rings its owner. The inbox holds the load until the entry is acked.
func (n *Node) Post(ctx context.Context, id, identity, scope string, p *Posted, load Load) (PostResult, error) {
	p.From = n.cfg.Instance
	b, err := json.Marshal(p)
	if err != nil {
		return PostResult{}, err
	}
	sealed := n.ring.Load().seal(b, inboxContext(id))
	ctx, cancel := n.bound(ctx)
	defer cancel()
	v, err := postScript.Run(ctx, n.rdb, []string{n.keys.meta(id), n.keys.inbox(id)},
		identity, scope, max(load.MaxInflight, 0), sealed, load.Work, n.keys.node(""), n.cfg.Instance, id,
		load.Responses, load.Bytes, max(load.MaxBytes, 0)).Slice()
	if err != nil {
		return PostResult{}, err
	}
	code, _ := v[0].(int64)
	switch code {
	case 0:
		return PostResult{}, ErrGone
	case 1:
		return PostResult{}, ErrForbidden
	case 2:
		return PostResult{}, ErrInboxFull
	case 4:
		return PostResult{}, ErrInboxBytes
	}
	owner, _ := v[1].(string)
	entry, _ := v[2].(string)
	listeners, _ := v[3].(int64)
	prev, _ := v[4].(string)
	return PostResult{Owner: owner, Listening: listeners > 0, Entry: entry, Prev: prev}, nil
}

// Pending returns up to count entries of session id's inbox after the
// entry id after ("" for the first).
func (n *Node) Pending(ctx context.Context, id, after string, count int64) ([]Entry, error) {
	start := "-"
	if after != "" {
		start = "(" + after
	}
	ctx, cancel := n.bound(ctx)
	defer cancel()
	msgs, err := n.rdb.XRangeN(ctx, n.keys.inbox(id), start, "+", count).Result()
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(msgs))
	for _, m := range msgs {
		e := Entry{ID: m.ID}
		s, _ := m.Values["m"].(string)
		if p, keyID, err := n.openPosted(id, s); err == nil {
			e.Posted = *p
		} else if errors.Is(err, ErrUnreadable) {
			// Not ours to read: keep the place, dispatch nothing.
			n.unreadable("inbox entry", keyID)
		}
		out = append(out, e)
	}
	return out, nil
}

// openPosted opens an inbox entry of session id, as the inbox or its
// doorbell carries it.
func (n *Node) openPosted(id, sealed string) (*Posted, string, error) {
	b, keyID, err := n.ring.Load().open([]byte(sealed), inboxContext(id))
	if err != nil {
		return nil, keyID, err
	}
	var p Posted
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, keyID, err
	}
	return &p, keyID, nil
}

// Upstream is the upstream state an owner records with each ack.
type Upstream struct {
	ID          string
	Protocol    string
	Initialized bool
}

// Ack deletes inbox entries that are done (their answers reached the
// client), gives back what they held of the inbox's bounds, tells their
// posters on other instances (Events.Acked), and records the upstream state, if this instance still owns
// the session at epoch; ErrFenced if not.
func (n *Node) Ack(ctx context.Context, id string, epoch int64, up Upstream, entries ...string) error {
	ctx, cancel := n.bound(ctx)
	defer cancel()
	args := make([]any, 0, 7+len(entries))
	args = append(args, n.cfg.Instance, epoch, up.ID, up.Protocol, flag(up.Initialized), n.keys.node(""), id)
	for _, e := range entries {
		args = append(args, e)
	}
	ok, err := ackScript.Run(ctx, n.rdb, []string{n.keys.meta(id), n.keys.inbox(id)}, args...).Int64()
	if err != nil {
		return err
	}
	if ok == 0 {
		return ErrFenced
	}
	return nil
}

// Since is how long ago p was posted.
func (p *Posted) Since() time.Duration { return time.Since(time.Unix(0, p.At)) }

// LastEntry is the id of the newest entry of session id's inbox, "" if
// it is empty.
func (n *Node) LastEntry(ctx context.Context, id string) (string, error) {
	ctx, cancel := n.bound(ctx)
	defer cancel()
	msgs, err := n.rdb.XRevRangeN(ctx, n.keys.inbox(id), "+", "-", 1).Result()
	if err != nil || len(msgs) == 0 {
		return "", err
	}
	return msgs[0].ID, nil
}

// EntryBefore reports whether inbox entry id a was added no later than b
// (ids are "milliseconds-sequence").
func EntryBefore(a, b string) bool {
	am, as := splitEntryID(a)
	bm, bs := splitEntryID(b)
	return am < bm || (am == bm && as <= bs)
}

func splitEntryID(id string) (ms, seq uint64) {
	m, s, _ := strings.Cut(id, "-")
	ms, _ = strconv.ParseUint(m, 10, 64)
	seq, _ = strconv.ParseUint(s, 10, 64)
	return ms, seq
}

// AckRequest is one session's Ack in AckAll.
type AckRequest struct {
	Session  string
	Epoch    int64
	Upstream Upstream
	Entries  []string
}

// AckAll is Ack for several sessions in one round trip; errs[i] is
// reqs[i]'s (ErrFenced when another instance owns it now).
func (n *Node) AckAll(ctx context.Context, reqs []AckRequest) (errs []error) {
	ctx, cancel := n.bound(ctx)
	defer cancel()
	run := func(eval func(p redis.Pipeliner, keys []string, args ...any) *redis.Cmd) []*redis.Cmd {
		cmds := make([]*redis.Cmd, len(reqs))
		_, _ = n.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, r := range reqs {
				args := make([]any, 0, 7+len(r.Entries))
				args = append(args, n.cfg.Instance, r.Epoch, r.Upstream.ID, r.Upstream.Protocol, flag(r.Upstream.Initialized),
					n.keys.node(""), r.Session)
				for _, e := range r.Entries {
					args = append(args, e)
				}
				cmds[i] = eval(p, []string{n.keys.meta(r.Session), n.keys.inbox(r.Session)}, args...)
			}
			return nil
		})
		return cmds
	}
	cmds := run(func(p redis.Pipeliner, keys []string, args ...any) *redis.Cmd {
		return ackScript.EvalSha(ctx, p, keys, args...)
	})
	if len(cmds) > 0 && redis.HasErrorPrefix(cmds[0].Err(), "NOSCRIPT") {
		// Redis restarted without its script cache: send the script itself.
		cmds = run(func(p redis.Pipeliner, keys []string, args ...any) *redis.Cmd {
			return ackScript.Eval(ctx, p, keys, args...)
		})
	}
	errs = make([]error, len(reqs))
	for i, c := range cmds {
		ok, err := c.Int64()
		switch {
		case err != nil:
			errs[i] = err
		case ok == 0:
			errs[i] = ErrFenced
		}
	}
	return errs
}

// EntryRef names one inbox entry.
type EntryRef struct{ Session, Entry string }

// Existing reports which of refs are still in their inboxes, in one
// round trip.
func (n *Node) Existing(ctx context.Context, refs []EntryRef) ([]bool, error) {
	ctx, cancel := n.bound(ctx)
	defer cancel()
	bySession := map[string][]int{}
	var order []string
	for i, r := range refs {
		if _, ok := bySession[r.Session]; !ok {
			order = append(order, r.Session)
		}
		bySession[r.Session] = append(bySession[r.Session], i)
	}
	cmds := make([]*redis.Cmd, len(order))
	_, err := n.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range order {
			args := make([]any, 0, len(bySession[id]))
			for _, j := range bySession[id] {
				args = append(args, refs[j].Entry)
			}
			cmds[i] = existsScript.Eval(ctx, p, []string{n.keys.inbox(id)}, args...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]bool, len(refs))
	for i, id := range order {
		v, err := cmds[i].Int64Slice()
		if err != nil {
			return nil, err
		}
		for k, j := range bySession[id] {
			out[j] = k < len(v) && v[k] > 0
		}
	}
	return out, nil
}
