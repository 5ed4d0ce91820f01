package grounding

import (
	"slices"
	"testing"
)

func TestDocuments(t *testing.T) {
	for _, test := range []struct {
		name  string
		texts []string
		docs  []string
		other []string
	}{
		{"brackets", []string{"Context:\n[1] The sky is blue.\n[2] Grass is\ngreen.\n\nQuestion: why?"},
			[]string{"The sky is blue.", "Grass is\ngreen.\n\nQuestion: why?"}, []string{"Context:\n"}},
		{"keywords", []string{"Document 1: Alpha.\nDocument 2:\nBeta.\n**Source 3** - Gamma.\n## Passage 4\nDelta."},
			[]string{"Alpha.", "Beta.", "Gamma.", "Delta."}, nil},
		{"bracketed keywords", []string{"[Doc 1] Alpha.\n【2】 Beta.\n[Source 3]: Gamma."},
			[]string{"Alpha.", "Beta.", "Gamma."}, nil},
		{"tags", []string{`Read these. <doc id=1>Alpha.</doc> <document index="2"><source>b.txt</source>Beta.</document> Then answer.`},
			[]string{"Alpha.", "<source>b.txt</source>Beta."}, []string{"Read these.   Then answer."}},
		{"unclosed tags", []string{"<doc>Alpha. <doc>Beta."}, []string{"Alpha.", "Beta."}, nil},
		{"tag ids", []string{`<doc id="doc-2">Beta</doc><doc id='1'>Alpha</doc>`}, []string{"Alpha", "Beta"}, nil},
		{"gap and duplicate", []string{"[1] Alpha.\n[3] Gamma.", "[1] Alpha bis."},
			[]string{"Alpha.\nAlpha bis.", "", "Gamma."}, nil},
		{"no markers", []string{"A tool result.", "[x] not a marker\n1. a list\nDocument one"},
			[]string{"A tool result.", "[x] not a marker\n1. a list\nDocument one"}, nil},
		{"mixed", []string{"[1] Alpha.", "A tool result."}, []string{"Alpha."}, []string{"A tool result."}},
		{"not markers", []string{"See [1] inline.\nDocument 1 is long.\n[1000000] big\n[0] zero\nSection 1: x"},
			[]string{"See [1] inline.\nDocument 1 is long.\n[1000000] big\n[0] zero\nSection 1: x"}, nil},
		{"empty", nil, nil, nil},
	} {
		t.Run(test.name, func(t *testing.T) {
			docs, other := SplitDocuments(test.texts)
			if !slices.Equal(docs, test.docs) {
				t.Errorf("SplitDocuments(%q) docs = %q; want %q", test.texts, docs, test.docs)
			}
			if !slices.Equal(other, test.other) {
				t.Errorf("SplitDocuments(%q) other = %q; want %q", test.texts, other, test.other)
			}
			if d := Documents(test.texts); !slices.Equal(d, test.docs) {
				t.Errorf("Documents(%q) = %q; want %q", test.texts, d, test.docs)
			}
		})
	}
}
