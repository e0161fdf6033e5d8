package cluster

import "testing"

// WorkerIDFor reads the slot a master gave this process under its prefix,
// and WorkerID under the default one; anything else is 0 (not a worker).
func TestWorkerIDFor(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  int
	}{{"", 0}, {"3", 3}, {"-2", 0}, {"x", 0}} {
		t.Setenv("X_WORKER_ID", tc.value)
		if got := WorkerIDFor("X_"); got != tc.want {
			t.Errorf("X_WORKER_ID=%q: WorkerIDFor = %d, want %d", tc.value, got, tc.want)
		}
	}
	t.Setenv("X_WORKER_ID", "4")
	t.Setenv(DefaultEnvPrefix+"WORKER_ID", "2")
	if got := WorkerID(); got != 2 {
		t.Errorf("WorkerID = %d, want 2 (the default prefix's)", got)
	}
	if got := WorkerIDFor(""); got != 2 {
		t.Errorf(`WorkerIDFor("") = %d, want 2 (the default prefix's)`, got)
	}
}
