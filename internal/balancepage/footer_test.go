package balancepage

import (
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// The footer tells the user how often lbserver recycles a keep-alive
// connection: 1000 requests (graceful's default, nginx's too), 100 only for
// FORK --reuseport, which has no connection table.
func TestFooterStatesTheRecycling(t *testing.T) {
	b, err := fs.ReadFile(assets, "assets/balance.html")
	if err != nil {
		t.Fatal(err)
	}
	footer := regexp.MustCompile(`(?s)<footer.*</footer>`).FindString(string(b))
	text := strings.Join(strings.Fields(footer), " ")
	if strings.Contains(text, "after 100 requests") {
		t.Errorf("the footer says a connection is closed after 100 requests; it is 1000 (100 only with --reuseport):\n%s", text)
	}
	for _, want := range []string{"after 1000 requests", "100 for FORK instances started with <code>--reuseport</code>", "its share"} {
		if !strings.Contains(text, want) {
			t.Errorf("the footer lacks %q:\n%s", want, text)
		}
	}
}

// node runs the named functions of app.js with a script and returns what it
// printed. The functions are cut out of the file as they are written.
func node(t *testing.T, script string, funcs ...string) string {
	t.Helper()
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("node is not installed; CI must install it (make test does)")
		}
		t.Skip("node is not installed (make test installs it)")
	}
	js, err := fs.ReadFile(assets, "assets/app.js")
	if err != nil {
		t.Fatal(err)
	}
	var src strings.Builder
	for _, name := range funcs {
		m := regexp.MustCompile(`(?ms)^  function ` + name + `\(.*?^  }\n`).Find(js)
		if m == nil {
			t.Fatalf("app.js has no function %s", name)
		}
		src.Write(m)
	}
	out, err := exec.Command(nodeBin, "-e", src.String()+script).CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	return string(out)
}

// The timeline's y-axis reads whole, increasing numbers: empty, it was
// "1, 1, 0" (a middle tick of 0.5 rounded up).
func TestTimelineAxisTicks(t *testing.T) {
	out := node(t, `console.log(JSON.stringify([0, 1, 2, 3, 5, 7, 10, 11, 99, 250, 1234].map(axisTicks)))`, "axisTicks", "niceCeil")
	var got [][]float64
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	maxes := []float64{0, 1, 2, 3, 5, 7, 10, 11, 99, 250, 1234}
	for i, ticks := range got {
		if len(ticks) != 3 || ticks[0] != 0 || !(ticks[1] < ticks[2]) || ticks[2] < maxes[i] {
			t.Errorf("axisTicks(%v) = %v, want [0, middle, top] increasing with top >= %v", maxes[i], ticks, maxes[i])
		}
		for _, v := range ticks {
			if v != float64(int64(v)) {
				t.Errorf("axisTicks(%v) = %v: %v is not a whole number", maxes[i], ticks, v)
			}
		}
	}
	if want := []float64{0, 1, 2}; len(got) > 0 && !slicesEqual(got[0], want) {
		t.Errorf("empty timeline: axisTicks(0) = %v, want %v", got[0], want)
	}
}

func slicesEqual(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
