// Package everything builds, for tests, the Go SDK's conformance
// everything-server at the SDK version go.mod requires, from the module
// cache: once per test binary, whichever tests ask for it.
package everything

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
)

var (
	once sync.Once
	dir  string
	bin  string
	err  error
)

// Build returns the path of the everything-server binary, building it on
// the first call. Run it with no flags for stdio, with -http <addr> for
// Streamable HTTP (sessionless unless -stateless=false).
func Build() (string, error) {
	once.Do(func() {
		dir, err = os.MkdirTemp("", "mcp-everything-")
		if err != nil {
			return
		}
		bin = filepath.Join(dir, "everything-server")
		out, berr := exec.Command("go", "build", "-o", bin,
			"github.com/modelcontextprotocol/go-sdk/conformance/everything-server").CombinedOutput()
		if berr != nil {
			err = fmt.Errorf("building the Go SDK's everything-server: %w\n%s", berr, out)
		}
	})
	return bin, err
}

// Remove deletes what Build made; TestMain calls it after the tests.
func Remove() {
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
}
