package twofactor

import "testing"

func TestIPKeyGroupsIPv6By64(t *testing.T) {
	for _, tc := range []struct{ ip, want string }{
		{"192.0.2.7", "192.0.2.7"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"},
		{"::ffff:192.0.2.7", "::ffff:192.0.2.7"},
		{"not an ip", "not an ip"},
	} {
		if got := ipKey(tc.ip); got != tc.want {
			t.Errorf("ipKey(%q) = %q, want %q", tc.ip, got, tc.want)
		}
	}
}
