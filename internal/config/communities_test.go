package config

import (
	"slices"
	"strings"
	"testing"
)

func TestParseCommunity(t *testing.T) {
	tests := []struct {
		in      string
		want    Community
		text    string // String() of the result, when it differs from in
		wantErr string
	}{
		{in: "0:0", want: Community{}},
		{in: "65000:100", want: Community{Value: 65000<<16 | 100}},
		{in: "65535:65535", want: Community{Value: 0xffffffff}},
		{in: "007:08", want: Community{Value: 7<<16 | 8}, text: "7:8"},
		{in: "large:0:0:0", want: Community{Large: true}},
		{in: "large:4294967295:1:2", want: Community{Large: true, GlobalAdmin: 4294967295, LocalData1: 1, LocalData2: 2}},
		{in: "large:64512:4294967295:4294967295", want: Community{Large: true, GlobalAdmin: 64512, LocalData1: 4294967295, LocalData2: 4294967295}},

		{in: "", wantErr: "want a:b or large:a:b:c"},
		{in: "65000", wantErr: "want a:b or large:a:b:c"},
		{in: "1:2:3", wantErr: "want a:b or large:a:b:c"},
		{in: "65536:1", wantErr: `the first part ("65536") must be a number from 0 to 65535`},
		{in: "1:65536", wantErr: `the second part ("65536") must be a number from 0 to 65535`},
		{in: "-1:1", wantErr: "the first part"},
		{in: "+1:1", wantErr: "the first part"},
		{in: " 1:1", wantErr: "the first part"},
		{in: "1:1 ", wantErr: "the second part"},
		{in: ":1", wantErr: "the first part"},
		{in: "a:b", wantErr: "the first part"},
		{in: "no-export", wantErr: "want a:b or large:a:b:c"},
		{in: "large:1:2", wantErr: "want large:a:b:c"},
		{in: "large:1:2:3:4", wantErr: "want large:a:b:c"},
		{in: "large:4294967296:1:1", wantErr: `part 1 ("4294967296") must be a number from 0 to 4294967295`},
		{in: "large:1:x:1", wantErr: "part 2"},
		{in: "large:1:1:", wantErr: "part 3"},
		{in: "LARGE:1:2:3", wantErr: "want a:b or large:a:b:c"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseCommunity(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseCommunity(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), strconvQuote(tt.in)) {
					t.Errorf("error %q does not quote the input", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseCommunity(%q) unexpected error: %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseCommunity(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			text := tt.text
			if text == "" {
				text = tt.in
			}
			if got.String() != text {
				t.Errorf("String() = %q, want %q", got.String(), text)
			}
		})
	}
}

func TestCommunityCompare(t *testing.T) {
	in := []string{"large:1:1:1", "65000:2", "large:0:5:5", "1:1", "65000:1", "large:1:1:0"}
	want := []string{"1:1", "65000:1", "65000:2", "large:0:5:5", "large:1:1:0", "large:1:1:1"}
	var cs []Community
	for _, s := range in {
		c, err := ParseCommunity(s)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	slices.SortFunc(cs, Community.Compare)
	var got []string
	for _, c := range cs {
		got = append(got, c.String())
	}
	if !slices.Equal(got, want) {
		t.Errorf("sorted = %v, want %v", got, want)
	}
}

func FuzzParseCommunity(f *testing.F) {
	for _, s := range []string{"65000:100", "0:0", "65535:65535", "large:1:2:3", "large:4294967295:0:0", "65536:1", "1:2:3", "", "large:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCommunity(s)
		if err != nil {
			if c != (Community{}) {
				t.Fatalf("%q: error %v came with %+v", s, err, c)
			}
			return
		}
		if !c.Large && (c.GlobalAdmin|c.LocalData1|c.LocalData2) != 0 {
			t.Fatalf("%q: standard community with large fields set: %+v", s, c)
		}
		if c.Large && c.Value != 0 {
			t.Fatalf("%q: large community with Value set: %+v", s, c)
		}
		text := c.String()
		back, err := ParseCommunity(text)
		if err != nil {
			t.Fatalf("%q: String() = %q does not parse: %v", s, text, err)
		}
		if back != c {
			t.Fatalf("%q: round trip through %q gave %+v, want %+v", s, text, back, c)
		}
		if back.String() != text {
			t.Fatalf("%q: String() is not stable: %q then %q", s, text, back.String())
		}
		if c.Compare(back) != 0 {
			t.Fatalf("%q: Compare of equal communities = %d", s, c.Compare(back))
		}
	})
}
