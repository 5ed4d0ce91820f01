package oscal

import (
	"fmt"
	"strings"

	oscalTypes "github.com/defenseunicorns/go-oscal/src/types/oscal-1-1-3"

	"aigw/controls"
)

// Part ids of a control in the catalog: its statement and its assessment
// objective, the target of the control's finding.
func statementID(oscalID string) string { return oscalID + "_smt" }
func objectiveID(oscalID string) string { return oscalID + "_obj" }

// catalog renders the framework's controls, grouped by Control.Group in
// catalog order, so that every control id of the other documents resolves
// inside the package.
func (in *input) catalog() (*oscalTypes.OscalModels, error) {
	cat := in.cat
	md := in.metadata(cat.Title)
	md.Version = cat.Version
	md.Remarks = fmt.Sprintf("The %s controls (%s) as aigw evidences them, rendered by %s. "+
		"Statements are verbatim where the source's licence allows, else paraphrased; "+
		"the authoritative text is the source.", cat.Title, cat.Version, nonEmpty(in.r.Generator, "aigw"))
	if src := strings.TrimSpace(cat.Source); src != "" {
		md.Links = &[]oscalTypes.Link{{Href: src, Rel: "reference", Text: "Authoritative source of " + clean(cat.Title)}}
	}

	var groups []oscalTypes.Group
	var top []oscalTypes.Control
	index := make(map[string]int)
	for _, c := range in.controls {
		oc := catalogControl(c)
		if c.Group == "" {
			top = append(top, oc)
			continue
		}
		i, ok := index[c.Group]
		if !ok {
			i = len(groups)
			index[c.Group] = i
			groups = append(groups, oscalTypes.Group{
				ID:       groupID(c.Group),
				Title:    c.Group,
				Controls: &[]oscalTypes.Control{},
			})
		}
		*groups[i].Controls = append(*groups[i].Controls, oc)
	}
	return &oscalTypes.OscalModels{Catalog: &oscalTypes.Catalog{
		UUID:     in.pkgID(CatalogPath),
		Metadata: md,
		Groups:   some(groups),
		Controls: some(top),
	}}, nil
}

func catalogControl(c control) oscalTypes.Control {
	props := []oscalTypes.Property{
		{Name: "label", Value: clean(c.ID)},
		prop("evidence", nonEmpty(c.Evidence, controls.Automated)),
	}
	if c.Retired {
		props = append(props, oscalTypes.Property{Name: "status", Value: "withdrawn"})
	}
	var params []oscalTypes.Parameter
	for _, p := range c.Params {
		op := oscalTypes.Parameter{ID: p.ID}
		if v := clean(p.Value); v != "" {
			op.Values = &[]string{v}
		}
		params = append(params, op)
	}
	parts := []oscalTypes.Part{{
		ID:    statementID(c.OSCALID),
		Name:  "statement",
		Prose: nonEmpty(c.Statement, c.Title),
	}}
	parts = append(parts, oscalTypes.Part{
		ID:    objectiveID(c.OSCALID),
		Name:  "assessment-objective",
		Prose: objectiveProse(c),
	})
	if r := fragment(c.Reason); r != "" {
		prose := "An attestation must cover: " + r + "."
		if c.Retired || c.Evidence == controls.Inapplicable {
			prose = "Not applicable: " + r + "."
		}
		parts = append(parts, oscalTypes.Part{
			ID:    c.OSCALID + "_gdn",
			Name:  "guidance",
			Prose: prose,
		})
	}
	return oscalTypes.Control{
		ID:     c.OSCALID,
		Title:  clean(c.Title),
		Params: some(params),
		Props:  &props,
		Parts:  &parts,
	}
}

// objectiveProse says what the control's finding determines.
func objectiveProse(c control) string {
	switch {
	case c.Retired:
		return fmt.Sprintf("None: %s is withdrawn from the standard.", c.ID)
	case c.Evidence == controls.Inapplicable:
		return fmt.Sprintf("None: %s does not apply to an AI gateway deployment.", c.ID)
	case c.Evidence == controls.Attestation:
		return fmt.Sprintf("Determine if the organisation attested, in the period, that it meets %s.", c.ID)
	case c.Evidence == controls.Hybrid:
		return fmt.Sprintf("Determine if the ledger evidence for %s holds over the period and the organisation attested to the rest of the requirement.", c.ID)
	}
	return fmt.Sprintf("Determine if the ledger evidence for %s holds over the period.", c.ID)
}

// groupID makes an OSCAL token of a group name: "GOVERN" -> "govern",
// "Chapter III" -> "chapter-iii".
func groupID(g string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(g)) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	s := b.String()
	if s == "" || !(s[0] >= 'a' && s[0] <= 'z') {
		s = "g-" + s
	}
	return s
}

// profile renders the baseline the SSP imports: every control of the
// catalog but the withdrawn ones.
func (in *input) profile() (*oscalTypes.OscalModels, error) {
	var withdrawn []string
	for _, c := range in.controls {
		if c.Retired {
			withdrawn = append(withdrawn, c.OSCALID)
		}
	}
	imp := oscalTypes.Import{
		Href:       relHref(ProfilePath, CatalogPath),
		IncludeAll: &oscalTypes.IncludeAll{},
	}
	if len(withdrawn) > 0 {
		imp.ExcludeControls = &[]oscalTypes.SelectControlById{{WithIds: &withdrawn}}
	}
	md := in.metadata(fmt.Sprintf("%s (%s): aigw baseline", in.cat.Title, in.cat.Version))
	return &oscalTypes.OscalModels{Profile: &oscalTypes.Profile{
		UUID:     in.pkgID(ProfilePath),
		Metadata: md,
		Imports:  []oscalTypes.Import{imp},
		Merge:    &oscalTypes.Merge{AsIs: true},
	}}, nil
}
