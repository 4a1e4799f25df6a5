package dispatch

// What a POST carries to the instance that dispatches it, when that is
// not the instance that received it (cluster mode): the values the
// handlers before mcp_sse set, as text, and the request rebuilt from them.

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// PostValues returns, as text, the placeholder values and vars the
// handlers before mcp_sse set on r (the authenticated user above all).
// Values that are not text, numbers or booleans are left out.
// Vars keep their types (Caddy's own, such as trusted_proxy, are read
// back as booleans); numbers arrive as float64.
func PostValues(r *http.Request) (values map[string]string, vars map[string]any) {
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		values = textOf(replacerValues(repl))
	}
	if v, ok := r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any); ok {
		for k, x := range v {
			switch x.(type) {
			case string, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
				if vars == nil {
					vars = make(map[string]any, len(v))
				}
				vars[k] = x
			}
		}
	}
	return values, vars
}

func textOf(m map[string]any) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		switch v.(type) {
		case string, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
			out[k] = fmt.Sprint(v)
		}
	}
	return out
}

// CarriedPost rebuilds, as the template of a dispatch, a POST another
// instance received: base is a context of this instance's server (the
// session's stream request's), path the message path, and the rest what
// the POST carried.
func CarriedPost(base context.Context, path string, header http.Header, host, remoteAddr string, viaTLS bool, values map[string]string, vars map[string]any) *http.Request {
	repl := caddy.NewReplacer()
	for k, v := range values {
		repl.Set(k, v)
	}
	if vars == nil {
		vars = make(map[string]any)
	}
	ctx := context.WithValue(base, caddy.ReplacerCtxKey, repl)
	ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, vars)
	if header == nil {
		header = make(http.Header)
	}
	u := &url.URL{Path: path}
	r := &http.Request{
		Method: http.MethodPost, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: header, Host: host, RemoteAddr: remoteAddr, RequestURI: u.RequestURI(), Body: http.NoBody,
	}
	if viaTLS {
		// What the upstream request needs of it: that the client's
		// connection was encrypted (X-Forwarded-Proto https).
		r.TLS = &tls.ConnectionState{HandshakeComplete: true}
	}
	return r.WithContext(ctx)
}

// ResumeListening opens the upstream's standalone stream for a session
// that was initialized elsewhere (a takeover), if the dispatcher listens
// and nothing listens for the session yet.
func (d *Dispatcher) ResumeListening(c Call) {
	if d.Listen && c.Session.Initialized() && c.Session.StartListening() {
		go d.listen(c, template(c.Post, d.ForwardHeaders))
	}
}

// CarriedHeader is the part of r's header a dispatch passes upstream
// (Authorization, X-Forwarded-*, and forward), which is all another
// instance needs of it.
func CarriedHeader(r *http.Request, forward []string) http.Header {
	h := make(http.Header, 1+len(forward))
	copyHeader(h, r.Header, "Authorization")
	for _, name := range forwardedHeaders {
		copyHeader(h, r.Header, name)
	}
	for _, name := range forward {
		copyHeader(h, r.Header, name)
	}
	return h
}
