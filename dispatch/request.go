package dispatch

// Building the upstream request: what a dispatch keeps of the client's
// POST, the Streamable HTTP headers of a message, and the request itself.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/mcpsse/caddy-mcp-sse/session"
)

// requestTemplate is what a dispatch keeps of the client's POST.
type requestTemplate struct {
	ctx        context.Context // &detached
	detached   detached
	url        url.URL
	host       string
	remoteAddr string
	header     http.Header // only the headers passed upstream; nil if none
	server     *caddyhttp.Server
	tls        *tls.ConnectionState
	// values and vars are copies of what the handlers before mcp_sse set
	// for the POST (the authenticated user above all), for the handlers
	// after it: each upstream request gets a replacer and vars map of its
	// own, filled from these.
	values map[string]any
	vars   []variable
	// fewVars holds vars when there are few, as on most POSTs (Caddy
	// sets three for every request): no allocation of their own.
	fewVars [4]variable
}

// variable is one of the POST's vars, kept in a slice of exactly their
// number rather than in a map's table.
type variable struct {
	name  string
	value any
}

// Template is what the dispatches of a POST's messages keep of it,
// copied once for all of them: it is only read after.
type Template struct{ t requestTemplate }

// Template copies what the upstream requests of r's messages need of it.
// Call it from r's handler.
func (d *Dispatcher) Template(r *http.Request) *Template {
	t := new(Template)
	t.t.fill(r, d.ForwardHeaders)
	return t
}

// forwardedHeaders are passed on so that reverse_proxy can extend them
// when they come from a proxy it trusts; from any other client it
// replaces them, as it would on the POST itself.
var forwardedHeaders = []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"}

// template is a new requestTemplate of r.
func template(r *http.Request, forward []string) *requestTemplate {
	t := new(requestTemplate)
	t.fill(r, forward)
	return t
}

// fill makes t the template of r.
func (t *requestTemplate) fill(r *http.Request, forward []string) {
	*t = requestTemplate{
		detached: detached{r.Context()},
		// The message path alone: the client's query names our session
		// (and whatever else the client chose), never the upstream's.
		url:        url.URL{Path: r.URL.Path, RawPath: r.URL.RawPath},
		host:       r.Host,
		remoteAddr: r.RemoteAddr,
		tls:        r.TLS,
	}
	t.ctx = &t.detached
	t.server, _ = r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		t.values = replacerValues(repl)
	}
	if vars, ok := r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any); ok && len(vars) > 0 {
		t.vars = t.fewVars[:0]
		if len(vars) > len(t.fewVars) {
			t.vars = make([]variable, 0, len(vars))
		}
		for k, v := range vars {
			t.vars = append(t.vars, variable{k, v})
		}
	}
	// Most POSTs carry none of these: the map is made for the first.
	keep := func(name string) {
		if len(r.Header.Values(name)) == 0 {
			return
		}
		if t.header == nil {
			t.header = make(http.Header, 1+len(forward))
		}
		copyHeader(t.header, r.Header, name)
	}
	keep("Authorization")
	for _, name := range forwardedHeaders {
		keep(name)
	}
	for _, name := range forward {
		keep(name)
	}
}

// cloneHeader is h.Clone with room for extra more keys, so that setting
// the message's headers does not grow the map.
func cloneHeader(h http.Header, extra int) http.Header {
	n := 0
	for _, v := range h {
		n += len(v)
	}
	c := make(http.Header, len(h)+extra)
	if n == 0 {
		return c
	}
	vals := make([]string, n)
	for k, v := range h {
		if v == nil {
			c[k] = nil
			continue
		}
		m := copy(vals, v)
		c[k] = vals[:m:m]
		vals = vals[m:]
	}
	return c
}

func copyHeader(dst, src http.Header, name string) {
	if v := src.Values(name); len(v) > 0 {
		dst[http.CanonicalHeaderKey(name)] = append([]string(nil), v...)
	}
}

// setMessageHeaders sets the Streamable HTTP headers of one message. The
// values share one backing array, vals (the send's, not an allocation
// per header); each value slice has its length as capacity, so an append
// by a later handler copies instead of writing into its neighbour.
func setMessageHeaders(h http.Header, msg *Message, upstreamID, version string, vals *[messageHeaders]string) {
	keys := [messageHeaders]string{"Content-Type", "Accept"}
	vals[0], vals[1] = "application/json", "application/json, text/event-stream"
	n := 2
	set := func(key, v string) {
		keys[n], vals[n] = key, v
		n++
	}
	if upstreamID != "" {
		set(HeaderSessionID, upstreamID)
	}
	if version == "" {
		version = msg.ProtocolVersion
	}
	if version != "" && msg.Method != "initialize" {
		set(HeaderProtocolVersion, version)
	}
	if msg.Method != "" {
		set(HeaderMethod, headerValue(msg.Method))
		if msg.Name != "" {
			set(HeaderName, headerValue(msg.Name))
		}
	}
	for i := range n {
		h[keys[i]] = vals[i : i+1 : i+1]
	}
}

// messageHeaders is the most headers setMessageHeaders sets.
const messageHeaders = 6

// headerValue encodes v as the 2026-07-28 revision wants header values
// mirrored from the body: as is when it is plain visible ASCII without
// surrounding blanks, otherwise base64 inside "=?base64?…?=".
func headerValue(v string) string {
	plain := v[0] != ' ' && v[0] != '\t' && v[len(v)-1] != ' ' && v[len(v)-1] != '\t'
	for i := 0; plain && i < len(v); i++ {
		plain = v[i] >= 0x20 && v[i] <= 0x7e
	}
	if plain && !(len(v) >= 11 && v[:9] == "=?base64?" && v[len(v)-2:] == "?=") {
		return v
	}
	return "=?base64?" + base64.StdEncoding.EncodeToString([]byte(v)) + "?="
}

// send is what one upstream request needs besides the request itself,
// in one allocation: its URL, the watch of its writes, its body's reader
// and the values of its message's headers.
type send struct {
	url   url.URL
	watch sendWatch
	body  handoffBody
	vals  [messageHeaders]string
}

// request builds an upstream request from the template, prepared as Caddy
// prepares a request of its own: a replacer and vars of its own, filled
// with copies of the POST's values, so that concurrent dispatches never
// share the maps of the POST that carried them. body may be nil.
func (t *requestTemplate) request(ctx context.Context, method string, body io.ReadCloser, n int64, rep *reply) *http.Request {
	return t.prepare(ctx, method, new(send), body, n, rep)
}

// messageRequest builds the upstream request that POSTs msg, with its
// headers; done, if set, is handed on once the upstream has read it all.
func (t *requestTemplate) messageRequest(ctx context.Context, msg *Message, upstreamID, version string, rep *reply, done *session.Turn) *http.Request {
	s := new(send)
	s.body.Reset(msg.Raw)
	s.body.done = done
	req := t.prepare(ctx, http.MethodPost, s, &s.body, int64(len(msg.Raw)), rep)
	setMessageHeaders(req.Header, msg, upstreamID, version, &s.vals)
	return req
}

func (t *requestTemplate) prepare(ctx context.Context, method string, s *send, body io.ReadCloser, n int64, rep *reply) *http.Request {
	s.url = t.url
	if body == nil {
		body = http.NoBody
	}
	// Built on the stack: WithContext copies it to the heap once.
	base := http.Request{
		Method:        method,
		URL:           &s.url,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        cloneHeader(t.header, messageHeaders),
		Body:          body,
		ContentLength: n,
		Host:          t.host,
		RemoteAddr:    t.remoteAddr,
		RequestURI:    s.url.RequestURI(),
		TLS:           t.tls,
	}
	rep.sends = s.watch.start(ctx, rep.gate)
	ctx = rep.sends.ctx
	if v, _ := ctx.Value(inProcessKey{}).(bool); !v {
		// Not a descendant of the template's own context (the end of
		// a session is bounded by a context of its own).
		ctx = context.WithValue(ctx, inProcessKey{}, true)
	}
	req := base.WithContext(ctx)
	repl := caddy.NewReplacer()
	for k, v := range t.values {
		repl.Set(k, v)
	}
	req = caddyhttp.PrepareRequest(req, repl, rep, t.server)
	if vars, ok := req.Context().Value(caddyhttp.VarsCtxKey).(map[string]any); ok {
		for _, v := range t.vars {
			vars[v.name] = v.value
		}
	}
	return req
}

// sessionRequest builds a request without a body about the upstream
// session itself (its standalone stream, its end), carrying its id and
// protocol version.
func (t *requestTemplate) sessionRequest(ctx context.Context, method string, rep *reply, upstreamID, version string) *http.Request {
	req := t.request(ctx, method, nil, 0, rep)
	req.Header.Set(HeaderSessionID, upstreamID)
	if version != "" {
		req.Header.Set(HeaderProtocolVersion, version)
	}
	return req
}

// handoffBody is a request body that reports when the upstream has read
// all of it. Closed unread, it reports nothing: the transport does that
// with a request it dropped unsent, which is sent again (see resend.go)
// and must keep its place in the order; the dispatch hands on its turn
// when it ends in any case.
type handoffBody struct {
	bytes.Reader
	done *session.Turn // handed on once the upstream has read it all
}

func (b *handoffBody) Read(p []byte) (int, error) {
	n, err := b.Reader.Read(p)
	if err == io.EOF && b.done != nil {
		b.done.Hand()
	}
	return n, err
}

func (b *handoffBody) Close() error { return nil }

// inProcessKey marks the requests a dispatch sends through the handler
// chain.
type inProcessKey struct{}

// InProcess reports whether r was sent by mcp_sse's dispatch, in
// process, for one of its sessions: a handler after mcp_sse can tell its
// own clients from those of mcp_sse.
func InProcess(r *http.Request) bool {
	v, _ := r.Context().Value(inProcessKey{}).(bool)
	return v
}
