package oauth

import (
	"net/url"
	"strings"
)

// WellKnownPrefix is where RFC 9728 puts a protected resource's metadata.
const WellKnownPrefix = "/.well-known/oauth-protected-resource"

// ResourceMetadata is the Protected Resource Metadata document (RFC 9728
// section 2) mcp_auth serves.
type ResourceMetadata struct {
	Resource               string   `json:"resource"`
	AuthorizationServers   []string `json:"authorization_servers"`
	ScopesSupported        []string `json:"scopes_supported,omitempty"`
	BearerMethodsSupported []string `json:"bearer_methods_supported"`
	ResourceName           string   `json:"resource_name,omitempty"`
	ResourceDocumentation  string   `json:"resource_documentation,omitempty"`
}

// MetadataPath is the path of the metadata of a resource whose URI has
// path resourcePath: the well-known prefix, followed by the resource's
// path when it has one (RFC 9728 section 3.1).
func MetadataPath(resourcePath string) string {
	p := strings.TrimSuffix(resourcePath, "/")
	if p == "" {
		return WellKnownPrefix
	}
	return WellKnownPrefix + p
}

// MetadataURL is the URL of resource's metadata document.
func MetadataURL(resource string) string {
	u, err := url.Parse(resource)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host + MetadataPath(u.EscapedPath())
}
