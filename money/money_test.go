package money

import "testing"

func TestNanoUSD(t *testing.T) {
	for _, c := range []struct {
		in   string
		want NanoUSD
		out  string
	}{
		{"0", 0, "0.000000000"},
		{"12", 12e9, "12.000000000"},
		{"0.25", 250_000_000, "0.250000000"},
		{".5", 500_000_000, "0.500000000"},
		{"0.000000001", 1, "0.000000001"},
		{"0.000012500", 12_500, "0.000012500"},
		{"-3.25", -3_250_000_000, "-3.250000000"},
		{"9223372036.854775807", 1<<63 - 1, "9223372036.854775807"},
	} {
		got, err := Parse(c.in)
		if err != nil || got != c.want {
			t.Errorf("Parse(%q) = %d, %v; want %d", c.in, got, err, c.want)
			continue
		}
		if s := got.String(); s != c.out {
			t.Errorf("%d.String() = %q, want %q", got, s, c.out)
		}
		back, err := Parse(got.String())
		if err != nil || back != got {
			t.Errorf("round trip of %q: %d, %v", got.String(), back, err)
		}
	}
	for _, bad := range []string{"", ".", "1.", "1.0000000001", "+1", "1e3", "abc", "1.2.3", "9223372037", "9223372036.854775808", "--1", " 1", "99999999999999999999"} {
		if v, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) = %d, want an error", bad, v)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"0", "1.5", "-0.000000001", "9223372036.854775807", "1."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := Parse(s)
		if err != nil {
			return
		}
		back, err := Parse(v.String())
		if err != nil || back != v {
			t.Fatalf("%q -> %d -> %q -> %d, %v", s, v, v.String(), back, err)
		}
	})
}
