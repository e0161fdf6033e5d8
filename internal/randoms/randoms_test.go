package randoms

import (
	"context"
	"encoding/json"
	"testing"
)

func TestCountSumsToN(t *testing.T) {
	for _, total := range []int64{1, 7, 1000, 123457, 3_000_001} {
		c, err := CountSeeded(context.Background(), total, 0, 42)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Sum(); got != uint64(total) {
			t.Errorf("sum for %d: got %d, want %d", total, got, total)
		}
	}
}

func TestCountCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Count(ctx, 1_000_000_000, 0); err == nil {
		t.Fatal("got nil error for a cancelled count, want context.Canceled")
	}
}

func TestAppendJSONShape(t *testing.T) {
	c, _ := CountSeeded(context.Background(), 100_000, 2, 1)
	var m map[string]uint64
	if err := json.Unmarshal(c.AppendJSON(nil), &m); err != nil {
		t.Fatalf("invalid JSON: %v", err)
	}
	if len(m) != Max {
		t.Errorf("got %d keys, want %d", len(m), Max)
	}
	var sum uint64
	for _, v := range m {
		sum += v
	}
	if sum != 100_000 {
		t.Errorf("got sum %d, want 100000", sum)
	}
}
