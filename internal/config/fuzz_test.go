package config

import (
	"bytes"
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzParse feeds a configuration file to Parse, as switchboard serve and
// check read it: YAML laid over Default, decoded, validated. Nothing may
// panic; a file refused says why; a file accepted gives a configuration
// that validates and that, written back as YAML, reads back the same.
func FuzzParse(f *testing.F) {
	f.Add([]byte("sip:\n  listen: \"127.0.0.1:5060\"\n  trunks:\n    - name: pstn\n      address: \"127.0.0.2:5070\"\n      allowFrom: [\"127.0.0.2\"]\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("refused without a word")
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted what Validate refuses: %v", err)
		}
		out, err := yaml.Marshal(&c)
		if err != nil {
			t.Fatalf("the configuration does not write as YAML: %v", err)
		}
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("the configuration written back is refused: %v\n%s", err, out)
		}
		// Compared as written: an empty list reads back as no list.
		if again, err := yaml.Marshal(&back); err != nil || !bytes.Equal(again, out) {
			t.Fatalf("the configuration written back reads differently:\n%s\n%s", out, again)
		}
	})
}
