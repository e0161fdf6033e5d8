package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A value given to make (make lab-fail HOST=2) is data: one that carries
// shell code (backticks, $(...), ;) is never run, whichever target takes
// it (they run as root for the lab), and a value make checks (PORT, MODE,
// HOST, the counts) is refused with a line naming the variable. Targets'
// prerequisites that would build or install are skipped with make -o.
func TestMakeVariablesAreNotCode(t *testing.T) {
	requireTool(t, "make")
	dir := t.TempDir()
	for i, c := range []struct {
		args  []string // target and make flags; the hostile VAR=value is added
		vr    string
		value string // %s: the file the code would create
		named bool   // make itself refuses the value, naming the variable
	}{
		{[]string{"lab-fail"}, "HOST", "`touch %s`2", true},
		{[]string{"lab-fail"}, "HOST", "$(touch %s)2", true},
		{[]string{"lab-heal"}, "HOST", "1;touch %s", true},
		{[]string{"-o", "build", "run"}, "PORT", "`touch %s`", true},
		{[]string{"-o", "build", "run"}, "MODE", "FORK;touch %s", true},
		{[]string{"-o", "build", "run"}, "PORT", "$(shell touch %s)", true},
		{[]string{"-o", "build", "run"}, "BIN", "`touch %s`", false},
		{[]string{"-o", "pm-tools", "nodemon"}, "PORT", "8080$$(touch %s)", true},
		{[]string{"-o", "build", "screenshots"}, "PORT", "`touch %s`", true},
		{[]string{"-o", "pm-tools", "forever-down"}, "FOREVER_TIMEOUT", "`touch %s`", true},
		{[]string{"stack-status"}, "RUN_DIR", dir + "/`touch %s`", false},
		{[]string{"fuzz"}, "FUZZTIME", "1x`touch %s`", false},
	} {
		marker := filepath.Join(dir, "ran-"+string(rune('a'+i)))
		value := strings.ReplaceAll(c.value, "%s", marker)
		args := append([]string{"-C", repoRoot(), "--no-print-directory"}, c.args...)
		args = append(args, c.vr+"="+value)
		cmd := exec.CommandContext(cmdCtx(t, 3*time.Minute), "make", args...)
		cmd.Env = append(os.Environ(), "LAB_PREFIX=ltnone-")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		out, err := cmd.CombinedOutput()
		what := "make " + strings.Join(c.args, " ") + " " + c.vr + "=" + value
		if _, serr := os.Stat(marker); serr == nil {
			t.Errorf("%s: the value ran as shell code (it created %s)\n%s", what, marker, out)
			continue
		}
		if c.named {
			if err == nil {
				t.Errorf("%s: exit 0, want a refusal", what)
			}
			first := strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0]
			if !strings.Contains(first, c.vr) {
				t.Errorf("%s: first line %q, want one naming %s\n%s", what, first, c.vr, out)
			}
		}
	}
}
