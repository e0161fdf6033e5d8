package server

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzParseCant: for any query value and any max, ParseCant never panics,
// accepts only a plain run of ASCII digits whose value is 1..max, and its
// error message stays short. Corpus: testdata/fuzz/FuzzParseCant.
func FuzzParseCant(f *testing.F) {
	for _, v := range []string{"1", "100", "0", "-5", "abc", "1.5", "1e9", "99999999999999999999", "", " 5", "0005", "+5", "٣"} {
		f.Add(v, int64(1_000_000_000), false)
	}
	f.Add("5", int64(5), true)
	f.Fuzz(func(t *testing.T, v string, max int64, twice bool) {
		if max < 1 {
			max = 1
		}
		values := []string{v}
		if twice {
			values = append(values, v)
		}
		n, err := ParseCant(values, 7, max)
		if err != nil {
			if len(err.Error()) > 200 {
				t.Fatalf("error for %q is %d bytes long", v, len(err.Error()))
			}
			return
		}
		if twice {
			t.Fatalf("cant given twice accepted: %q -> %d", v, n)
		}
		if n < 1 || n > max {
			t.Fatalf("ParseCant(%q, max %d) = %d, out of 1..max", v, max, n)
		}
		if v == "" || strings.TrimLeft(v, "0123456789") != "" {
			t.Fatalf("ParseCant(%q) = %d: accepted something other than digits", v, n)
		}
		if want, _ := strconv.ParseInt(v, 10, 64); want != n {
			t.Fatalf("ParseCant(%q) = %d, want %d", v, n, want)
		}
	})
}
