package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// /info is rendered once at start: an argument that is markup is shown as
// text by the real binary, and the live values still change per request.
func TestInfoHTMLEscapesArguments(t *testing.T) {
	port := FreePort(t)
	hostile := `</td><script>alert(1)</script><!--lbserver:uptime-->`
	// --build is a free-form argument that reaches /info's argument list; it
	// runs only when a file under --watch-dir changes, and nothing does here.
	p := StartLB(t, "--host", "127.0.0.1", "--port", strconv.Itoa(port), "--watch", "--watch-dir", t.TempDir(), "--build", hostile)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	WaitHTTP(t, p, base+"/healthz", 15*time.Second)
	body := string(MustGet(t, base+"/info").Body)
	if strings.Contains(body, "<script>") || strings.Contains(body, "</td><script") || strings.Contains(body, "<!--lbserver:") {
		t.Fatalf("/info shows the argument as markup:\n%s", body)
	}
	if !strings.Contains(body, "&lt;/td&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;!--lbserver:uptime--&gt;") {
		t.Errorf("/info does not show the argument escaped:\n%s", body)
	}
	if !strings.Contains(body, `<dd id="uptime">`) || !strings.Contains(body, " MiB <span") {
		t.Errorf("/info lacks the live uptime or RSS:\n%s", body)
	}
}
