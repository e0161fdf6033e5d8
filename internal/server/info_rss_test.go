package server

import (
	"testing"
	"time"
)

// The RSS shown is read again once it is older than rssMaxAge, not before.
func TestRSSCacheRefreshes(t *testing.T) {
	var c rssCache
	now := time.Now()
	if got := c.get(now); got <= 0 {
		t.Fatalf("first read: got %d, want > 0", got)
	}
	c.val.Store(-5) // a value /proc never gives: shows whether it was re-read
	if got := c.get(now.Add(rssMaxAge / 2)); got != -5 {
		t.Errorf("within rssMaxAge: got %d, want the cached -5", got)
	}
	if got := c.get(now.Add(rssMaxAge + time.Millisecond)); got <= 0 {
		t.Errorf("after rssMaxAge: got %d, want a fresh value > 0", got)
	}
}
