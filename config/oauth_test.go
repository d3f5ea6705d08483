package config

import (
	"slices"
	"testing"
)

// TestAllowedTenants: tenant common (or organizations, consumers) is
// accepted for the delegated flow once allowed_tenants lists tenant IDs,
// which are lower-cased; a named tenant needs no list.
func TestAllowedTenants(t *testing.T) {
	c := mustParse(t, "mailgate.yaml", y("oauth:", "  provider: microsoft", "  tenant: common", "  client_id: x",
		"  allowed_tenants: [72F988BF-86F1-41AF-91AB-2D7CD011DB47, ' 9188040d-6c67-4c5b-b112-36a304b66dad']"))
	want := []string{"72f988bf-86f1-41af-91ab-2d7cd011db47", "9188040d-6c67-4c5b-b112-36a304b66dad"}
	if !slices.Equal(c.OAuth.AllowedTenants, want) {
		t.Errorf("allowed_tenants = %q, want %q", c.OAuth.AllowedTenants, want)
	}
	c = mustParse(t, "mailgate.yaml", "hostname: h\n"+msOAuth)
	if c.OAuth.AllowedTenants != nil {
		t.Errorf("allowed_tenants without the key = %q, want none", c.OAuth.AllowedTenants)
	}
}

func TestIsGUID(t *testing.T) {
	for s, want := range map[string]bool{
		"72f988bf-86f1-41af-91ab-2d7cd011db47":  true,
		"72f988bf-86f1-41af-91ab-2d7cd011db4":   false,
		"72f988bf-86f1-41af-91ab-2d7cd011db477": false,
		"72f988bf86f1-41af-91ab-2d7cd011db47-":  false,
		"72f988bg-86f1-41af-91ab-2d7cd011db47":  false,
		"contoso.onmicrosoft.com":               false,
		"":                                      false,
	} {
		if got := isGUID(s); got != want {
			t.Errorf("isGUID(%q) = %v, want %v", s, got, want)
		}
	}
}
