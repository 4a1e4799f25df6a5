package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ServerMetadata is what mcp_auth needs of the authorization server's
// metadata (RFC 8414, or OpenID Discovery, which shares these names).
type ServerMetadata struct {
	Issuer                string `json:"issuer"`
	JWKSURI               string `json:"jwks_uri"`
	IntrospectionEndpoint string `json:"introspection_endpoint"`
	TokenEndpoint         string `json:"token_endpoint"`
}

// MetadataURLs are where the metadata of the authorization server whose
// issuer identifier is issuer may be, in the order tried: RFC 8414's
// well-known URI (the suffix inserted between host and path), OpenID
// Discovery's (the suffix appended to the path), and RFC 8414's form of
// OpenID's (inserted), as the MCP specification lists them.
func MetadataURLs(issuer string) ([]string, error) {
	u, err := url.Parse(issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("authorization server %q is not an issuer identifier (https://host[/path])", issuer)
	}
	origin := u.Scheme + "://" + u.Host
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	if path == "" {
		return []string{
			origin + "/.well-known/oauth-authorization-server",
			origin + "/.well-known/openid-configuration",
		}, nil
	}
	return []string{
		origin + "/.well-known/oauth-authorization-server" + path,
		origin + path + "/.well-known/openid-configuration",
		origin + "/.well-known/openid-configuration" + path,
	}, nil
}

// discover fetches the metadata of issuer from the first of its
// well-known URIs that answers, and checks that it is that issuer's
// (RFC 8414 section 3.3: a document naming another issuer must not be
// used).
func (f *fetcher) discover(ctx context.Context, issuer string) (*ServerMetadata, error) {
	urls, err := MetadataURLs(issuer)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, u := range urls {
		var md ServerMetadata
		if err := f.getJSON(ctx, u, &md); err != nil {
			errs = append(errs, err)
			continue
		}
		if md.Issuer != issuer {
			return nil, fmt.Errorf("metadata at %s names issuer %q, not %q", u, md.Issuer, issuer)
		}
		return &md, nil
	}
	return nil, fmt.Errorf("no metadata for authorization server %s: %w", issuer, errors.Join(errs...))
}
