package dispatch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/mcpsse/caddy-mcp-sse/internal/jsonscan"
)

// JSON-RPC 2.0 error codes used by the bridge.
const (
	CodeParseError     = -32700
	CodeInvalidRequest = -32600
	CodeInternalError  = -32603
	CodeInvalidParams  = -32602
	// CodeSessionNotFound answers a POST for a session that does not
	// exist (the code several MCP SDKs use for it).
	CodeSessionNotFound = -32001
	// CodeServerBusy answers a message refused for a limit on work in
	// flight; the client may send it again later.
	CodeServerBusy = -32000
)

// Message is one JSON-RPC message posted by a client, with what the bridge
// needs of it read out once.
type Message struct {
	// Raw is the message exactly as posted.
	Raw json.RawMessage
	// ID is the request id; nil for notifications. Responses carry their
	// id here too but have no Method.
	ID json.RawMessage
	// Method is "" for responses.
	Method string
	// Name is what the Mcp-Name header mirrors: params.name of tools/call
	// and prompts/get, params.uri of resources/read.
	Name string
	// ProtocolVersion is params._meta["io.modelcontextprotocol/protocolVersion"],
	// which clients of the sessionless revisions send instead of initialize.
	ProtocolVersion string
}

// IsRequest reports whether m expects a response.
func (m *Message) IsRequest() bool { return m.Method != "" && m.ID != nil }

// ParseError is a body that cannot be taken: its Code says which JSON-RPC
// error answers it.
type ParseError struct {
	Code int
	Msg  string
}

func (e *ParseError) Error() string { return e.Msg }

// Parse reads a POSTed body: one JSON-RPC 2.0 message or a batch of them.
// A batch is returned as its messages, in order, so that each is
// dispatched on its own: newer Streamable HTTP servers no longer accept
// batches.
func Parse(body []byte) ([]Message, error) { return ParseInto(nil, body) }

// ParseInto is Parse appending the messages to dst: a caller with room
// for one message parses a single message without an allocation for the
// slice.
func ParseInto(dst []Message, body []byte) ([]Message, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, &ParseError{CodeParseError, "parse error: empty body"}
	}
	// json.Unmarshal checks the whole input before decoding, so a body
	// that is not JSON is found by the decode itself, with no second scan.
	if body[0] != '[' {
		m, err := parseOne(body)
		if err != nil {
			return nil, err
		}
		return append(dst, m), nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(body, &items); err != nil {
		return nil, &ParseError{CodeParseError, "parse error: body is not valid JSON: " + err.Error()}
	}
	if len(items) == 0 {
		return nil, &ParseError{CodeInvalidRequest, "invalid request: empty batch"}
	}
	msgs := slices.Grow(dst, len(items))
	for i, raw := range items {
		m, err := parseOne(raw)
		if err != nil {
			var pe *ParseError
			errors.As(err, &pe)
			return nil, &ParseError{pe.Code, fmt.Sprintf("batch item %d: %s", i, pe.Msg)}
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

func parseOne(raw json.RawMessage) (Message, error) {
	invalid := func(why string) (Message, error) {
		return Message{}, &ParseError{CodeInvalidRequest, "invalid request: " + why}
	}
	if len(raw) == 0 || (raw[0] != '{' && json.Valid(raw)) {
		return invalid("a JSON-RPC message must be an object")
	}
	if !json.Valid(raw) {
		err := json.Unmarshal(raw, new(any)) // for its description of what is wrong
		return Message{}, &ParseError{CodeParseError, "parse error: body is not valid JSON: " + err.Error()}
	}
	// The members the bridge reads, by their exact keys; a repeated one
	// would be read one way here and maybe another way upstream.
	var version, id, method, params, result, rpcErr []byte
	err := jsonscan.EachMember(raw, func(key string, v []byte) error {
		var slot *[]byte
		switch key {
		case "jsonrpc":
			slot = &version
		case "id":
			slot = &id
		case "method":
			slot = &method
		case "params":
			slot = &params
		case "result":
			slot = &result
		case "error":
			slot = &rpcErr
		default:
			return sameButCase(key, "jsonrpc", "id", "method", "params", "result", "error")
		}
		if *slot != nil {
			return fmt.Errorf("%w %q", errDuplicateKey, key)
		}
		*slot = v
		return nil
	})
	if err != nil {
		return invalid(err.Error())
	}
	if v, ok := jsonscan.StringView(version); !ok || v != "2.0" {
		return invalid(`"jsonrpc" must be "2.0"`)
	}
	if id != nil && !validID(id) {
		return invalid(`"id" must be a string, a number or null`)
	}
	m := Message{Raw: raw, ID: id}
	switch {
	case method != nil:
		name, ok := jsonscan.String(method)
		if !ok {
			return invalid(`"method" must be a string`)
		}
		if name == "" {
			return invalid(`"method" must not be empty`)
		}
		if params != nil && params[0] != '{' && params[0] != '[' {
			return invalid(`"params" must be an object or an array`)
		}
		m.Method = name
		if err := readParams(&m, params); err != nil {
			return invalid(err.Error())
		}
	case result != nil || rpcErr != nil:
		if id == nil {
			return invalid(`a response must carry "id"`)
		}
		if result != nil && rpcErr != nil {
			return invalid(`a response carries "result" or "error", not both`)
		}
	default:
		return invalid(`neither a request ("method") nor a response ("result" or "error")`)
	}
	return m, nil
}

func validID(id json.RawMessage) bool {
	switch c := id[0]; {
	case c == '"', c == '-', '0' <= c && c <= '9':
		return true
	default:
		return string(id) == "null"
	}
}

// readParams fills Name and ProtocolVersion, reading the params' members
// by their exact keys. Params are walked only when they can hold either,
// which keeps the common path to one pass over the body.
func readParams(m *Message, params json.RawMessage) error {
	named := m.Method == "tools/call" || m.Method == "prompts/get" || m.Method == "resources/read"
	if params == nil || params[0] != '{' || (!named && !bytes.Contains(params, []byte(`"_meta"`))) {
		return nil
	}
	nameKey := "name"
	if m.Method == "resources/read" {
		nameKey = "uri"
	}
	var name, meta []byte
	err := jsonscan.EachMember(params, func(key string, v []byte) error {
		var slot *[]byte
		switch {
		case key == "_meta":
			slot = &meta
		case named && key == nameKey:
			slot = &name
		default:
			if named {
				return sameButCase(key, nameKey, "_meta")
			}
			return sameButCase(key, "_meta")
		}
		if *slot != nil {
			return fmt.Errorf("%w \"params.%s\"", errDuplicateKey, key)
		}
		*slot = v
		return nil
	})
	if err != nil {
		return err
	}
	m.Name, _ = jsonscan.String(name)
	if meta != nil && meta[0] == '{' {
		return jsonscan.EachMember(meta, func(key string, v []byte) error {
			if key == "io.modelcontextprotocol/protocolVersion" {
				m.ProtocolVersion, _ = jsonscan.String(v)
			}
			return nil
		})
	}
	return nil
}

// ErrorResponse encodes a JSON-RPC error response. A nil id is written as
// null, as the spec wants when the request's id could not be read.
func ErrorResponse(id json.RawMessage, code int, message string, data any) []byte {
	if id == nil {
		id = json.RawMessage("null")
	}
	type rpcError struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Data    any    `json:"data,omitempty"`
	}
	b, err := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   rpcError        `json:"error"`
	}{"2.0", id, rpcError{code, message, data}})
	if err != nil {
		// Only data could fail to encode; the error without it still
		// tells the client what happened.
		return ErrorResponse(id, code, message, nil)
	}
	return b
}
