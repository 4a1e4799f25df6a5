package generation

// The multi-round-trip requests (MRTR, SEP-2322) of the sessionless
// revision: a server that needs the user, the model or the roots answers
// with an InputRequiredResult, and the client retries the request with
// the answers. For a legacy client, each input request becomes a
// server-to-client request on its stream.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/mcpsse/caddy-mcp-sse/internal/jsonscan"
)

// MaxInputRequests bounds the input requests of one round.
const MaxInputRequests = 64

// InputRequest is one entry of an InputRequiredResult's inputRequests.
type InputRequest struct {
	Key    string
	Method string
	Params json.RawMessage
}

// InputRequired is an InputRequiredResult as the bridge needs it.
type InputRequired struct {
	// Requests are sorted by key, so rounds go out in a stable order.
	Requests []InputRequest
	// State is requestState exactly as the server sent it (nil if it
	// sent none): the retry carries it back byte for byte.
	State json.RawMessage
}

// ParseResult reads a response message from the upstream. A result whose
// resultType is "input_required" is returned as such (ok true); any other
// message is not (ok false, err nil). An input_required result the bridge
// cannot act on is an error.
func ParseResult(msg json.RawMessage) (ir InputRequired, ok bool, err error) {
	if absent(msg, "input_required") {
		return ir, false, nil // most results: no need to decode them
	}
	var env struct {
		Result *struct {
			ResultType    string                     `json:"resultType"`
			InputRequests map[string]json.RawMessage `json:"inputRequests"`
			RequestState  json.RawMessage            `json:"requestState"`
		} `json:"result"`
	}
	if json.Unmarshal(msg, &env) != nil || env.Result == nil || env.Result.ResultType != "input_required" {
		return ir, false, nil
	}
	r := env.Result
	if len(r.InputRequests) == 0 {
		// The revision lets a loaded server answer with no requests ("retry
		// later"); the bridge retries it like any round.
		ir.State = r.RequestState
		return ir, true, nil
	}
	if len(r.InputRequests) > MaxInputRequests {
		return ir, true, fmt.Errorf("the server asked for %d inputs in one round (at most %d)", len(r.InputRequests), MaxInputRequests)
	}
	if r.RequestState != nil && (len(r.RequestState) == 0 || r.RequestState[0] != '"') {
		return ir, true, errors.New("requestState is not a string")
	}
	ir.State = r.RequestState
	for key, raw := range r.InputRequests {
		var req struct {
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
		}
		if err := json.Unmarshal(raw, &req); err != nil || req.Method == "" {
			return ir, true, fmt.Errorf("input request %q has no method", key)
		}
		if isNull(req.Params) || len(req.Params) == 0 {
			req.Params = json.RawMessage(`{}`)
		}
		ir.Requests = append(ir.Requests, InputRequest{Key: key, Method: req.Method, Params: req.Params})
	}
	slices.SortFunc(ir.Requests, func(a, b InputRequest) int { return compare(a.Key, b.Key) })
	return ir, true, nil
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Capability names the client capability a kind of input request needs,
// "" for a kind the bridge does not know (and will not ask a client).
func Capability(method string) string {
	switch method {
	case "elicitation/create":
		return "elicitation"
	case "sampling/createMessage":
		return "sampling"
	case "roots/list":
		return "roots"
	}
	return ""
}

// ClientRequest is the server-to-client request that asks a legacy client
// for one input.
func ClientRequest(id json.RawMessage, r InputRequest) json.RawMessage {
	out, _ := marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": r.Method, "params": r.Params})
	return out
}

// ClientAnswer is a legacy client's response to an input request.
type ClientAnswer struct {
	Result json.RawMessage
	// Code and Message are the error it answered with, if it did.
	Code    int
	Message string
	Failed  bool
}

// ParseAnswer reads a client's response message.
func ParseAnswer(msg json.RawMessage) ClientAnswer {
	var env struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(msg, &env) != nil {
		return ClientAnswer{Failed: true, Code: -32700, Message: "the answer is not JSON"}
	}
	if env.Error != nil {
		return ClientAnswer{Failed: true, Code: env.Error.Code, Message: env.Error.Message}
	}
	if !isObject(env.Result) {
		return ClientAnswer{Failed: true, Code: -32600, Message: "the answer has no result object"}
	}
	return ClientAnswer{Result: env.Result}
}

// RetryParams are the params a retry sets: the answers under the keys the
// server chose, and requestState as it came (removed when the server sent
// none).
func RetryParams(responses map[string]json.RawMessage, state json.RawMessage) (map[string]json.RawMessage, error) {
	rb, err := marshal(responses)
	if err != nil {
		return nil, err
	}
	return map[string]json.RawMessage{"inputResponses": rb, "requestState": state}, nil
}

// Complete gives a final result for a legacy client: under the client's
// id, without resultType, which a legacy client does not know. answered
// is the id the message came under: when it is the client's already and
// there is no resultType, the message goes as it is.
func Complete(msg, id, answered json.RawMessage) json.RawMessage {
	if bytes.Equal(answered, id) && absent(msg, "resulttype") {
		return msg
	}
	if out, ok := completeFast(msg, id); ok {
		return out
	}
	return completeSlow(msg, id)
}

// completeSlow is Complete through maps, for any shape.
func completeSlow(msg, id json.RawMessage) json.RawMessage {
	var env map[string]json.RawMessage
	if json.Unmarshal(msg, &env) != nil {
		return msg
	}
	env["id"] = id
	if res, ok := env["result"]; ok && bytes.Contains(res, []byte(`"resultType"`)) {
		var r map[string]json.RawMessage
		if json.Unmarshal(res, &r) == nil {
			delete(r, "resultType")
			env["result"] = object(r)
		}
	}
	return object(env)
}

// completeFast is Complete by splicing: the id's value replaced and the
// result's resultType member cut out, the rest of the bytes as they came
// (every 2026-07-28 result carries resultType). ok is false when the
// message is not the plain shape the splice handles.
func completeFast(msg, id json.RawMessage) (json.RawMessage, bool) {
	top, ok := jsonscan.Members(msg, maxScanned)
	if !ok {
		return nil, false
	}
	idm, res := jsonscan.Find(top, "id"), jsonscan.Find(top, "result")
	if idm == nil {
		return nil, false
	}
	var cut *jsonscan.Member
	if res != nil {
		inner, ok := jsonscan.Members(res.Value, maxScanned)
		if !ok {
			return nil, false
		}
		cut = jsonscan.Find(inner, "resultType")
	}
	out := make([]byte, 0, len(msg)+len(id))
	valueStart := idm.End - len(idm.Value)
	if cut == nil || idm.Start < res.Start {
		out = append(out, msg[:valueStart]...)
		out = append(out, id...)
		if cut == nil {
			return append(out, msg[idm.End:]...), true
		}
		out = append(out, msg[idm.End:res.End-len(res.Value)]...)
		out = appendWithout(out, res.Value, cut)
		return append(out, msg[res.End:]...), true
	}
	// result before id
	out = append(out, msg[:res.End-len(res.Value)]...)
	out = appendWithout(out, res.Value, cut)
	out = append(out, msg[res.End:valueStart]...)
	out = append(out, id...)
	return append(out, msg[idm.End:]...), true
}

// appendWithout appends obj without its member m, and the comma that
// went with it.
func appendWithout(out, obj []byte, m *jsonscan.Member) []byte {
	start, end := m.Start, m.End
	// Take the comma after the member, or else the one before it.
	if j := jsonscan.SkipSpace(obj, end); j < len(obj) && obj[j] == ',' {
		end = j + 1
	} else if k := lastNonSpace(obj, start); k >= 0 && obj[k] == ',' {
		start = k
	}
	out = append(out, obj[:start]...)
	return append(out, obj[end:]...)
}

func lastNonSpace(b []byte, i int) int {
	for i--; i >= 0; i-- {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
		default:
			return i
		}
	}
	return -1
}
