package generation

// The server's side of the sessionless revision, for a bridge that serves
// 2026-07-28 clients in front of a legacy server (mcp_stdio): reading a
// request's _meta and checking its headers against its body, answering
// server/discover from a legacy initialize result, and the shapes of an
// InputRequiredResult and of its retry.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// The request headers the revision mirrors from the body.
const (
	HeaderProtocolVersion = "Mcp-Protocol-Version"
	HeaderMethod          = "Mcp-Method"
	HeaderName            = "Mcp-Name"
)

// ModernVersion reports whether version (an MCP-Protocol-Version value)
// names the sessionless revision or a later one: revisions are dates, and
// compare as strings.
func ModernVersion(version string) bool { return version >= Modern }

// ProtocolError is a request the revision refuses before any server sees
// it: the JSON-RPC code, and the data of the error, if any.
type ProtocolError struct {
	Code    int
	Message string
	Data    any
}

func (e *ProtocolError) Error() string { return e.Message }

// UnsupportedVersion is the -32022 a request naming a revision the bridge
// does not serve gets, listing those it does.
func UnsupportedVersion(requested string, supported []string) *ProtocolError {
	return &ProtocolError{
		Code:    CodeUnsupportedProtocolVersion,
		Message: fmt.Sprintf("unsupported %s %q", HeaderProtocolVersion, requested),
		Data:    map[string]any{"supported": supported, "requested": requested},
	}
}

func mismatch(format string, args ...any) *ProtocolError {
	return &ProtocolError{Code: CodeHeaderMismatch, Message: "header mismatch: " + fmt.Sprintf(format, args...)}
}

// RequestMeta reads the _meta a 2026-07-28 client puts in a request:
// protocol version, client info and capabilities, log level. Members that
// are absent stay empty; a _meta that is not an object is an error.
func RequestMeta(params json.RawMessage) (version string, m Meta, err error) {
	var p struct {
		Meta map[string]json.RawMessage `json:"_meta"`
	}
	if len(params) == 0 || isNull(params) {
		return "", m, nil
	}
	if err := json.Unmarshal(params, &p); err != nil {
		return "", m, fmt.Errorf("params or params._meta is not an object")
	}
	_ = json.Unmarshal(p.Meta[MetaProtocolVersion], &version)
	m.ProtocolVersion = version
	if isObject(p.Meta[MetaClientInfo]) {
		m.Info = p.Meta[MetaClientInfo]
	}
	if isObject(p.Meta[MetaClientCapabilities]) {
		m.Capabilities = p.Meta[MetaClientCapabilities]
	}
	if l, ok := p.Meta[MetaLogLevel]; ok {
		if json.Unmarshal(l, &m.LogLevel) != nil || !ValidLogLevel(m.LogLevel) {
			return version, m, fmt.Errorf("_meta %s must be one of %s", MetaLogLevel, strings.Join(LogLevels, ", "))
		}
	}
	return version, m, nil
}

// CheckHeaders checks a sessionless request's headers against its body,
// as a server of the revision must: MCP-Protocol-Version against _meta's
// protocol version, Mcp-Method against the method, Mcp-Name against the
// name (params.name, or params.uri of resources/read) and, for tools/call,
// each Mcp-Param-* of the tool's bindings against its argument (present
// exactly when the argument is, equal to it once decoded). metaVersion is
// "" when _meta names none, name "" for a method without one.
func CheckHeaders(h http.Header, method, name, metaVersion string, params json.RawMessage, bindings []Binding) *ProtocolError {
	// A header given twice is refused: this check reads the first value,
	// and a proxy or server behind may read the last, and so route by a
	// method or name other than the one checked against the body.
	for k, vs := range h {
		if len(vs) > 1 && (k == HeaderProtocolVersion || k == HeaderMethod || k == HeaderName || strings.HasPrefix(k, ParamHeaderPrefix)) {
			return mismatch("%s is given %d times", k, len(vs))
		}
	}
	if v := h.Get(HeaderProtocolVersion); metaVersion != "" && v != metaVersion {
		return mismatch("%s %q does not match _meta %s %q", HeaderProtocolVersion, v, MetaProtocolVersion, metaVersion)
	}
	if got := h.Get(HeaderMethod); got != method {
		if got == "" {
			return mismatch("missing %s header (the body's method is %q)", HeaderMethod, method)
		}
		return mismatch("%s %q does not match the body's method %q", HeaderMethod, got, method)
	}
	if Named(method) {
		got, ok := DecodeHeaderValue(h.Get(HeaderName))
		switch {
		case h.Get(HeaderName) == "":
			return mismatch("missing %s header for %s", HeaderName, method)
		case !ok:
			return mismatch("%s is not valid base64", HeaderName)
		case got != name:
			return mismatch("%s %q does not match the body's %q", HeaderName, got, name)
		}
	}
	if method != "tools/call" || len(bindings) == 0 {
		return nil
	}
	var p struct {
		Arguments map[string]json.RawMessage `json:"arguments"`
	}
	_ = json.Unmarshal(params, &p)
	for _, b := range bindings {
		header := ParamHeaderPrefix + b.Header
		raw := h.Get(header)
		arg, present := lookupArg(p.Arguments, b.Path)
		if !present || isNull(arg) {
			if raw != "" {
				return mismatch("%s is set but argument %q is absent", header, strings.Join(b.Path, "."))
			}
			continue
		}
		if raw == "" {
			return mismatch("missing %s header for argument %q", header, strings.Join(b.Path, "."))
		}
		got, ok := DecodeHeaderValue(raw)
		if !ok {
			return mismatch("%s is not valid base64", header)
		}
		want, ok := primitive(arg)
		if !ok {
			return mismatch("%s is set but argument %q is not a string, integer or boolean", header, strings.Join(b.Path, "."))
		}
		if got != want && !sameNumber(got, want) {
			return mismatch("%s %q does not match argument %q", header, raw, strings.Join(b.Path, "."))
		}
	}
	return nil
}

func lookupArg(args map[string]json.RawMessage, path []string) (json.RawMessage, bool) {
	if args == nil {
		return nil, false
	}
	return lookup(args, path)
}

// sameNumber compares an integer argument with its header as numbers, so
// that "1.0" or "1e0" mirror 1 as the revision's clients may write them.
func sameNumber(header, body string) bool {
	b, err := strconv.ParseInt(body, 10, 64)
	if err != nil {
		return false
	}
	h, err := strconv.ParseFloat(header, 64)
	return err == nil && h == float64(b)
}

// Named reports whether method's requests carry the name Mcp-Name mirrors.
func Named(method string) bool {
	return method == "tools/call" || method == "prompts/get" || method == "resources/read"
}

// DecodeHeaderValue undoes HeaderValue: a value in "=?base64?…?=" is
// decoded (ok false when it is not base64), any other is as it is.
func DecodeHeaderValue(v string) (string, bool) {
	inner, ok := strings.CutPrefix(v, "=?base64?")
	if !ok {
		return v, true
	}
	inner, ok = strings.CutSuffix(inner, "?=")
	if !ok {
		return v, true
	}
	b, err := base64.StdEncoding.DecodeString(inner)
	if err != nil {
		return "", false
	}
	return string(b), true
}

// ErrorResponse is a JSON-RPC error message with data (nil: none).
func ErrorResponse(id json.RawMessage, code int, message string, data any) json.RawMessage {
	if id == nil {
		id = json.RawMessage("null")
	}
	e := map[string]any{"code": code, "message": message}
	if data != nil {
		e["data"] = data
	}
	out, err := marshal(map[string]any{"jsonrpc": "2.0", "id": id, "error": e})
	if err != nil {
		panic(fmt.Sprintf("generation: marshaling an error: %v", err))
	}
	return out
}

// DiscoverResult answers server/discover for a legacy server from its
// answer to initialize (the result object): its capabilities and
// instructions, its serverInfo in _meta, and the versions the bridge
// serves.
func DiscoverResult(id json.RawMessage, versions []string, initialize json.RawMessage) json.RawMessage {
	var init struct {
		Capabilities json.RawMessage `json:"capabilities"`
		ServerInfo   json.RawMessage `json:"serverInfo"`
		Instructions string          `json:"instructions"`
	}
	_ = json.Unmarshal(initialize, &init)
	res := map[string]any{
		"supportedVersions": versions,
		"capabilities":      orEmpty(init.Capabilities),
		"resultType":        "complete",
	}
	if isObject(init.ServerInfo) {
		res["_meta"] = map[string]any{MetaServerInfo: init.ServerInfo}
	}
	if init.Instructions != "" {
		res["instructions"] = init.Instructions
	}
	return Response(id, res)
}

// InputRequiredResult is the answer that asks a 2026-07-28 client for
// input: each request under its key, and the state the retry carries
// back.
func InputRequiredResult(id json.RawMessage, requests []InputRequest, state string) json.RawMessage {
	reqs := make(map[string]json.RawMessage, len(requests))
	for _, r := range requests {
		reqs[r.Key], _ = marshal(map[string]any{"method": r.Method, "params": orEmpty(r.Params)})
	}
	return Response(id, map[string]any{"resultType": "input_required", "inputRequests": reqs, "requestState": state})
}

// Retry is what a client's retry of an input_required request carries.
type Retry struct {
	// Responses are the answers, by the keys of the input requests.
	Responses map[string]json.RawMessage
	// State is requestState as the client sent it back.
	State string
}

// ParseRetry reads params.inputResponses and params.requestState; ok is
// false for a request that is no retry (it has no requestState).
func ParseRetry(params json.RawMessage) (r Retry, ok bool, err error) {
	var p struct {
		InputResponses map[string]json.RawMessage `json:"inputResponses"`
		RequestState   *string                    `json:"requestState"`
	}
	if len(params) == 0 || !bytes.Contains(params, []byte(`"requestState"`)) {
		return r, false, nil // no retry: not worth a scan
	}
	if err := json.Unmarshal(params, &p); err != nil {
		return r, false, fmt.Errorf("inputResponses must be an object of results, requestState a string")
	}
	if p.RequestState == nil {
		return r, false, nil
	}
	for k, v := range p.InputResponses {
		if !isObject(v) {
			return r, true, fmt.Errorf("inputResponses[%q] is not an object", k)
		}
	}
	return Retry{Responses: p.InputResponses, State: *p.RequestState}, true, nil
}

// WithoutRetry removes inputResponses and requestState from a request's
// params, so that what the server gets of a retry is the request alone.
func WithoutRetry(raw json.RawMessage) (json.RawMessage, error) {
	var msg map[string]json.RawMessage
	if err := json.Unmarshal(raw, &msg); err != nil {
		return nil, err
	}
	var params map[string]json.RawMessage
	if err := json.Unmarshal(msg["params"], &params); err != nil || params == nil {
		return raw, nil
	}
	delete(params, "inputResponses")
	delete(params, "requestState")
	msg["params"] = object(params)
	return object(msg), nil
}

// RequestWithID is a request for another peer: id given, the method and
// params as they were (what else the message held, a request has no use
// for). Cheaper than WithID, which decodes the message.
func RequestWithID(id json.RawMessage, method string, params json.RawMessage) json.RawMessage {
	b := make([]byte, 0, len(id)+len(method)+len(params)+48)
	b = append(b, `{"jsonrpc":"2.0","id":`...)
	b = append(b, id...)
	b = append(b, `,"method":`...)
	b = appendKey(b, method)
	if len(params) > 0 {
		b = append(b, `,"params":`...)
		b = append(b, params...)
	}
	return append(b, '}')
}

// SwapID gives a response another id: by replacing the bytes of old when
// the message holds them once (they are then its id, which holds them),
// else through WithID.
func SwapID(msg, old, id json.RawMessage) json.RawMessage {
	if i := bytes.Index(msg, old); i >= 0 && bytes.Count(msg, old) == 1 {
		out := make([]byte, 0, len(msg)-len(old)+len(id))
		out = append(out, msg[:i]...)
		out = append(out, id...)
		return append(out, msg[i+len(old):]...)
	}
	return WithID(msg, id)
}

// modernMetaKeys are the _meta members a 2026-07-28 client sends on every
// request, which a legacy server has no use for.
var modernMetaKeys = []string{MetaProtocolVersion, MetaClientInfo, MetaClientCapabilities, MetaLogLevel}

// LegacyParams are a sessionless request's params for a legacy server:
// without the revision's _meta members (the server learned what it needs
// of its client in initialize; reading them on every request costs it,
// and a server of both generations would take the request as a
// sessionless one). The client's other _meta members (progressToken) and
// params are kept as they were.
func LegacyParams(params json.RawMessage) json.RawMessage {
	if !bytes.Contains(params, []byte(`"io.modelcontextprotocol/`)) {
		return params
	}
	var p map[string]json.RawMessage
	if json.Unmarshal(params, &p) != nil {
		return params
	}
	var meta map[string]json.RawMessage
	if json.Unmarshal(p["_meta"], &meta) != nil || meta == nil {
		return params
	}
	for _, k := range modernMetaKeys {
		delete(meta, k)
	}
	if len(meta) == 0 {
		delete(p, "_meta")
	} else {
		p["_meta"] = object(meta)
	}
	return object(p)
}
