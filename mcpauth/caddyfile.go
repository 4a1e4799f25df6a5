package mcpauth

import (
	"fmt"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/go-jose/go-jose/v4"

	"github.com/mcpsse/caddy-mcp-sse/internal/directive"
	"github.com/mcpsse/caddy-mcp-sse/oauth"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("mcp_auth", parseCaddyfile)
	// With the authentication directives (after forward_auth), so it
	// comes before mcp_sse, mcp_stdio and reverse_proxy, whatever order
	// the plugins' init functions run in, and a Caddyfile needs no
	// order line.
	httpcaddyfile.RegisterDirectiveOrder("mcp_auth", httpcaddyfile.After, "forward_auth")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	mcp_auth [<matcher>] {
//		authorization_server <issuer>          # required
//		scopes               <scope...>        # required of every token; default none
//		resource             <uri>             # default: public scheme://host of the request
//		resource_path        <path>            # default: none (the origin is the resource)
//		resource_name        <name>
//		algorithms           <alg...>          # default RS256..512 PS256..512 ES256..512 EdDSA
//		leeway               <duration>        # default 30s
//		max_token_size       <size>            # default 8KiB
//		max_document_size    <size>            # default 256KiB
//		timeout              <duration>        # default 5s
//		keys_min_refresh     <duration>        # default 30s
//		keys_max_age         <duration>        # default 10m
//		token_cache          <duration> | off  # default 1m
//		introspection        <client_id> <client_secret>
//		introspection_cache  <duration> | off  # default 30s
//		forward_token        <header>          # default: the token goes no further
//		token_exchange {                       # RFC 8693; excludes forward_token
//			client_id     <id>                 # required
//			client_secret <secret>             # required
//			resource      <uri>                # the downstream resource; required unless audience is given
//			audience      <name>
//			scopes        <scope...>
//			header        <name>               # default Authorization
//		}
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	var forwardLine, exchangeLine int
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "authorization_server":
			if err = directive.OneArg(d, &h.AuthorizationServer); err == nil {
				if _, e := oauth.MetadataURLs(h.AuthorizationServer); e != nil {
					err = d.Errf("authorization_server: %v", e)
				}
			}
		case "scopes":
			err = remainingArgs(d, &h.Scopes)
		case "resource":
			if err = directive.OneArg(d, &h.Resource); err == nil {
				if _, ok := oauth.CanonicalResource(h.Resource); !ok {
					err = d.Errf("resource: %q is not an absolute URI without fragment", h.Resource)
				}
			}
		case "resource_path":
			err = directive.Path(d, &h.ResourcePath)
		case "resource_name":
			err = directive.OneArg(d, &h.ResourceName)
		case "algorithms":
			if err = remainingArgs(d, &h.Algorithms); err == nil {
				for _, a := range h.Algorithms {
					if !isAllowedAlgorithm(a) {
						err = d.Errf("algorithms: %q is not an asymmetric JWS algorithm (RS*, PS*, ES*, EdDSA)", a)
					}
				}
			}
		case "leeway":
			err = directive.PositiveDuration(d, &h.Leeway)
		case "max_token_size":
			err = directive.Size(d, &h.MaxTokenSize, false)
		case "max_document_size":
			err = directive.Size(d, &h.MaxDocumentSize, false)
		case "timeout":
			err = directive.PositiveDuration(d, &h.Timeout)
		case "keys_min_refresh":
			err = directive.PositiveDuration(d, &h.KeysMinRefresh)
		case "keys_max_age":
			err = directive.PositiveDuration(d, &h.KeysMaxAge)
		case "token_cache":
			err = directive.Duration(d, &h.TokenCache, true)
		case "introspection":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Errf("introspection takes <client_id> <client_secret>, got %d arguments", len(args))
			}
			if h.Introspection == nil {
				h.Introspection = new(Introspection)
			}
			h.Introspection.ClientID, h.Introspection.ClientSecret = args[0], args[1]
		case "introspection_cache":
			if h.Introspection == nil {
				h.Introspection = new(Introspection)
			}
			err = directive.Duration(d, &h.Introspection.Cache, true)
		case "forward_token":
			forwardLine = d.Line()
			if err = directive.OneArg(d, &h.ForwardTokenHeader); err == nil {
				if e := checkTokenHeader(h.ForwardTokenHeader); e != nil {
					err = d.Errf("forward_token: %v", e)
				}
			}
		case "token_exchange":
			exchangeLine = d.Line()
			err = h.unmarshalExchange(d)
		default:
			return d.Errf("unrecognized mcp_auth subdirective '%s'", d.Val())
		}
		if err != nil {
			return err
		}
	}
	if h.AuthorizationServer == "" {
		return d.Err("mcp_auth: authorization_server is required")
	}
	if forwardLine != 0 && exchangeLine != 0 {
		return fmt.Errorf("forward_token and token_exchange exclude each other: the client's token goes on, or one exchanged for it, not both, at %s:%d",
			d.File(), max(forwardLine, exchangeLine))
	}
	return nil
}

// unmarshalExchange reads a token_exchange block; an error names the line
// it is about (for a setting missing, the block's first).
func (h *Handler) unmarshalExchange(d *caddyfile.Dispenser) error {
	line := d.Line()
	if d.NextArg() {
		return d.ArgErr()
	}
	if h.TokenExchange != nil {
		return d.Err("token_exchange given twice")
	}
	x := new(TokenExchange)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "client_id":
			err = directive.OneArg(d, &x.ClientID)
		case "client_secret":
			err = directive.OneArg(d, &x.ClientSecret)
		case "resource":
			if err = directive.OneArg(d, &x.Resource); err == nil {
				if e := checkResourceURI(x.Resource); e != nil {
					err = d.Errf("token_exchange: %v", e)
				}
			}
		case "audience":
			err = directive.OneArg(d, &x.Audience)
		case "scopes":
			err = remainingArgs(d, &x.Scopes)
		case "header":
			if err = directive.OneArg(d, &x.Header); err == nil {
				if e := checkTokenHeader(x.Header); e != nil {
					err = d.Errf("token_exchange: header %v", e)
				}
			}
		default:
			return d.Errf("unrecognized token_exchange subdirective '%s'", d.Val())
		}
		if err != nil {
			return err
		}
	}
	if err := x.validate(); err != nil {
		return fmt.Errorf("%w, at %s:%d", err, d.File(), line)
	}
	h.TokenExchange = x
	return nil
}

func remainingArgs(d *caddyfile.Dispenser, dst *[]string) error {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return d.ArgErr()
	}
	*dst = append(*dst, args...)
	return nil
}

func isAllowedAlgorithm(a string) bool {
	for _, alg := range oauth.DefaultAlgorithms {
		if jose.SignatureAlgorithm(a) == alg {
			return true
		}
	}
	return false
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
