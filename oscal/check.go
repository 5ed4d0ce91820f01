package oscal

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	oscaluuid "github.com/defenseunicorns/go-oscal/src/pkg/uuid"
	"github.com/defenseunicorns/go-oscal/src/pkg/validation"
)

// uuidFor is the version 5 UUID (SHA-1, URL namespace) of a stable name.
func uuidFor(name string) string { return oscaluuid.NewUUIDWithSource(name) }

// Problem is one thing wrong with a document.
type Problem struct {
	// Path is the document's package path.
	Path string
	// Location is a JSON pointer into the document ("" for the whole
	// document).
	Location string
	Message  string
}

func (p Problem) String() string {
	if p.Location == "" {
		return p.Path + ": " + p.Message
	}
	return p.Path + ": " + p.Location + ": " + p.Message
}

// CheckError is every problem [Validate] or [Check] found.
type CheckError struct {
	Problems []Problem
}

func (e *CheckError) Error() string {
	const show = 20
	var b strings.Builder
	fmt.Fprintf(&b, "%d problem(s) in OSCAL documents", len(e.Problems))
	for i, p := range e.Problems {
		if i == show {
			fmt.Fprintf(&b, "\n(%d more)", len(e.Problems)-show)
			break
		}
		b.WriteString("\n")
		b.WriteString(p.String())
	}
	return b.String()
}

// Validate checks one OSCAL document on its own: it must validate against
// the OSCAL 1.1.3 JSON Schema (go-oscal's validator), declare
// oscal-version 1.1.3, and pass the checks JSON Schema cannot make: every
// UUID defined once and of version 4 or 5, every uuid reference
// (observation-uuid, finding-uuid, risk-uuid, actor-uuid, subject-uuid,
// component-uuid, party-uuid, ...) resolves to an object of the right kind
// in the document, every "#uuid" href names a back-matter resource of the
// document, and no string is empty. path is the document's package path,
// used in messages. The error is a *CheckError.
func Validate(path string, doc []byte) error {
	d, probs := validate(path, doc)
	if d != nil {
		probs = append(probs, d.local()...)
	}
	return problems(probs)
}

// Check checks the OSCAL documents of one package together: docs maps the
// package path of each document to its bytes, files the package path of
// every other file of the package to the lowercase hex SHA-256 of its
// bytes. Every document must pass [Validate]; docs must hold the catalog
// (CatalogPath), and every control-id, param-id, objective and statement
// target of every document must exist in it; every relative href
// (import-profile, import-ssp, control-implementation source, rlinks) must
// name a document or file of the package; and every back-matter hash must
// match the bytes it names. The error is a *CheckError.
func Check(docs map[string][]byte, files map[string]string) error {
	var probs []Problem
	paths := make([]string, 0, len(docs))
	for p := range docs {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	parsed := make(map[string]*document)
	for _, p := range paths {
		if err := checkPackagePath(p); err != nil {
			probs = append(probs, Problem{Path: p, Message: err.Error()})
			continue
		}
		if _, dup := files[p]; dup {
			probs = append(probs, Problem{Path: p, Message: "is both a document and an evidence file"})
		}
		d, ps := validate(p, docs[p])
		probs = append(probs, ps...)
		if d != nil {
			probs = append(probs, d.local()...)
			parsed[p] = d
		}
	}
	cat := parsed[CatalogPath]
	switch {
	case docs[CatalogPath] == nil:
		probs = append(probs, Problem{Path: CatalogPath, Message: "missing: the package's control ids cannot be resolved"})
	case cat != nil && cat.model != "catalog":
		probs = append(probs, Problem{Path: CatalogPath, Message: fmt.Sprintf("is a %s, not a catalog", cat.model)})
		cat = nil
	}
	sums := func(target string) (string, bool) {
		if b, ok := docs[target]; ok {
			s := sha256.Sum256(b)
			return hex.EncodeToString(s[:]), true
		}
		s, ok := files[target]
		return s, ok
	}
	for _, p := range paths {
		d := parsed[p]
		if d == nil {
			continue
		}
		if cat != nil {
			probs = append(probs, d.againstCatalog(cat)...)
		}
		for _, h := range d.hrefs {
			target, ok := resolve(p, h.value)
			if !ok {
				continue // absolute URI or fragment
			}
			if target == "" {
				probs = append(probs, Problem{Path: p, Location: h.loc, Message: fmt.Sprintf("href %q leaves the package", h.value)})
				continue
			}
			if _, exists := sums(target); !exists {
				probs = append(probs, Problem{Path: p, Location: h.loc, Message: fmt.Sprintf("href %q names %s, which is not in the package", h.value, target)})
			}
		}
		for _, h := range d.hashes {
			target, ok := resolve(p, h.href)
			if !ok || target == "" {
				probs = append(probs, Problem{Path: p, Location: h.loc, Message: fmt.Sprintf("hash of %q: the link does not name a file of the package", h.href)})
				continue
			}
			sum, exists := sums(target)
			if !exists {
				continue // reported with the hrefs
			}
			if h.algorithm != "SHA-256" {
				probs = append(probs, Problem{Path: p, Location: h.loc, Message: fmt.Sprintf("hash of %s: algorithm %q cannot be checked (use SHA-256)", target, h.algorithm)})
				continue
			}
			if !strings.EqualFold(h.value, sum) {
				probs = append(probs, Problem{Path: p, Location: h.loc, Message: fmt.Sprintf("hash of %s is %s, but the file's SHA-256 is %s", target, h.value, sum)})
			}
		}
	}
	return problems(probs)
}

func problems(ps []Problem) error {
	if len(ps) == 0 {
		return nil
	}
	return &CheckError{Problems: ps}
}

// resolve resolves a relative href of the document at package path doc to
// a package path: ok is false for an absolute URI or a bare fragment, and
// target is "" when the href leaves the package.
func resolve(doc, href string) (target string, ok bool) {
	if strings.HasPrefix(href, "#") || scheme.MatchString(href) {
		return "", false
	}
	if i := strings.IndexAny(href, "?#"); i >= 0 {
		href = href[:i]
	}
	if href == "" || strings.HasPrefix(href, "/") {
		return "", true
	}
	t := path.Join(path.Dir(doc), href)
	if t == "." || t == ".." || strings.HasPrefix(t, "../") {
		return "", true
	}
	return t, true
}

var (
	scheme = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.\-]*:`)
	// uuidV45 is the OSCAL UUIDDatatype: RFC 4122 version 4 or 5.
	uuidV45 = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[45][0-9A-Fa-f]{3}-[89ABab][0-9A-Fa-f]{3}-[0-9A-Fa-f]{12}$`)
	anyUUID = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`)
)

// validate runs the JSON Schema and parses doc for the referential checks;
// d is nil when doc cannot be parsed.
func validate(p string, doc []byte) (d *document, probs []Problem) {
	var root map[string]any
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	if err := dec.Decode(&root); err != nil {
		return nil, []Problem{{Path: p, Message: "not a JSON object: " + err.Error()}}
	}
	if dec.More() {
		return nil, []Problem{{Path: p, Message: "trailing data after the JSON object"}}
	}
	var model string
	for k := range root {
		if k != "$schema" {
			if model != "" {
				return nil, []Problem{{Path: p, Message: "more than one model at the root"}}
			}
			model = k
		}
	}
	if model == "" {
		return nil, []Problem{{Path: p, Message: "no OSCAL model at the root"}}
	}

	v, err := validation.NewValidatorDesiredVersion(doc, OSCALVersion)
	if err != nil {
		return nil, []Problem{{Path: p, Message: "schema: " + err.Error()}}
	}
	v.SetDocumentPath(p)
	if err := v.Validate(); err != nil {
		res, rerr := v.GetValidationResult()
		if rerr != nil || len(res.Errors) == 0 {
			probs = append(probs, Problem{Path: p, Message: "schema: " + err.Error()})
		}
		for _, e := range res.Errors {
			msg := e.Error
			if s, err := strconv.Unquote(msg); err == nil {
				msg = s
			}
			probs = append(probs, Problem{Path: p, Location: e.InstanceLocation, Message: "schema: " + msg})
		}
	}

	d = &document{path: p, model: model, defs: make(map[string]def), ids: make(map[string]def)}
	obj, _ := root[model].(map[string]any)
	if obj == nil {
		probs = append(probs, Problem{Path: p, Location: "/" + model, Message: "the model is not an object"})
		return d, probs
	}
	if md, _ := obj["metadata"].(map[string]any); md != nil {
		if ov, _ := md["oscal-version"].(string); ov != OSCALVersion {
			probs = append(probs, Problem{Path: p, Location: "/" + model + "/metadata/oscal-version",
				Message: fmt.Sprintf("oscal-version is %q, want %q", ov, OSCALVersion)})
		}
	}
	d.walk(obj, "/"+model, model)
	return d, probs
}

// document is what the referential checks need of a parsed document.
type document struct {
	path  string
	model string
	// defs are the UUIDs defined, ids the catalog ids (controls, parts,
	// params, groups).
	defs map[string]def
	ids  map[string]def
	// dups are definitions met again.
	dups []Problem
	// refs are uuid references, hrefs every href and control-implementation
	// source, hashes the hashes of resource links.
	refs   []ref
	hrefs  []ref
	hashes []hash
	// controlRefs, paramRefs and targetRefs name catalog ids.
	controlRefs, paramRefs, targetRefs []ref
	empties                            []string
}

type def struct {
	kind, loc string
}

type ref struct {
	loc, key, value string
	// kind is the kind of object the reference must name ("" for any).
	kind string
}

type hash struct {
	loc, href, algorithm, value string
}

// kindOf is the kind of an object with a uuid, from the key of the array or
// field that holds it.
var kindOf = map[string]string{
	"observations": "observation", "findings": "finding", "risks": "risk",
	"components": "component", "parties": "party", "resources": "resource",
	"users": "user", "inventory-items": "inventory-item", "locations": "location",
	"assessment-platforms": "assessment-platform", "tasks": "task", "activities": "activity",
	"remediations": "response", "poam-items": "poam-item", "results": "result",
}

// refKind is the kind a uuid reference names, from its key and the type
// beside it.
func refKind(key, typ string) string {
	switch key {
	case "observation-uuid":
		return "observation"
	case "finding-uuid":
		return "finding"
	case "risk-uuid":
		return "risk"
	case "component-uuid":
		return "component"
	case "party-uuid", "party-uuids", "member-of-organizations":
		return "party"
	case "location-uuid", "location-uuids":
		return "location"
	case "task-uuid":
		return "task"
	case "activity-uuid":
		return "activity"
	case "response-uuid":
		return "response"
	case "actor-uuid":
		switch typ {
		case "tool":
			return "component"
		case "party":
			return "party"
		case "assessment-platform":
			return "assessment-platform"
		}
	case "subject-uuid":
		switch typ {
		case "component", "party", "user", "inventory-item", "location", "resource":
			return typ
		}
	}
	return ""
}

// catalogIDKind is the kind of catalog id an object under key defines.
var catalogIDKind = map[string]string{"controls": "control", "parts": "part", "params": "param", "groups": "group"}

func (d *document) walk(v any, loc, key string) {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if u, ok := v["uuid"].(string); ok {
			kind := kindOf[key]
			if kind == "" {
				kind = key
			}
			if prev, dup := d.defs[u]; dup {
				d.dups = append(d.dups, Problem{Path: d.path, Location: loc + "/uuid",
					Message: fmt.Sprintf("uuid %s is defined twice (first at %s)", u, prev.loc)})
			} else {
				d.defs[u] = def{kind: kind, loc: loc + "/uuid"}
			}
		}
		if d.model == "catalog" {
			if id, ok := v["id"].(string); ok && catalogIDKind[key] != "" {
				if prev, dup := d.ids[id]; dup {
					d.dups = append(d.dups, Problem{Path: d.path, Location: loc + "/id",
						Message: fmt.Sprintf("id %q is defined twice (first at %s)", id, prev.loc)})
				} else {
					d.ids[id] = def{kind: catalogIDKind[key], loc: loc + "/id"}
				}
			}
		}
		typ, _ := v["type"].(string)
		for _, k := range keys {
			child := v[k]
			cloc := loc + "/" + pointerEscape(k)
			if s, ok := child.(string); ok {
				r := ref{loc: cloc, key: k, value: s}
				switch {
				case strings.HasSuffix(k, "-uuid"):
					r.kind = refKind(k, typ)
					d.refs = append(d.refs, r)
				case k == "href" || (k == "source" && key == "control-implementations"):
					d.hrefs = append(d.hrefs, r)
				case k == "control-id":
					d.controlRefs = append(d.controlRefs, r)
				case k == "param-id":
					d.paramRefs = append(d.paramRefs, r)
				case k == "target-id" || k == "statement-id":
					d.targetRefs = append(d.targetRefs, r)
				}
				if s == "" {
					d.empties = append(d.empties, cloc)
				}
				continue
			}
			if arr, ok := child.([]any); ok && (strings.HasSuffix(k, "-uuids") || k == "member-of-organizations" || k == "with-ids") {
				for i, e := range arr {
					if s, ok := e.(string); ok {
						r := ref{loc: fmt.Sprintf("%s/%d", cloc, i), key: k, value: s, kind: refKind(k, typ)}
						if k == "with-ids" {
							d.controlRefs = append(d.controlRefs, r)
						} else {
							d.refs = append(d.refs, r)
						}
					}
				}
			}
			if k == "rlinks" {
				d.rlinks(child, cloc)
			}
			d.walk(child, cloc, k)
		}
	case []any:
		for i, e := range v {
			d.walk(e, fmt.Sprintf("%s/%d", loc, i), key)
		}
	}
}

func (d *document) rlinks(v any, loc string) {
	links, _ := v.([]any)
	for i, l := range links {
		link, _ := l.(map[string]any)
		href, _ := link["href"].(string)
		hashes, _ := link["hashes"].([]any)
		for j, h := range hashes {
			hm, _ := h.(map[string]any)
			alg, _ := hm["algorithm"].(string)
			val, _ := hm["value"].(string)
			d.hashes = append(d.hashes, hash{loc: fmt.Sprintf("%s/%d/hashes/%d", loc, i, j), href: href, algorithm: alg, value: val})
		}
	}
}

// local are the problems the document has on its own.
func (d *document) local() []Problem {
	probs := append([]Problem(nil), d.dups...)
	var us []string
	for u := range d.defs {
		us = append(us, u)
	}
	sort.Strings(us)
	for _, u := range us {
		if !uuidV45.MatchString(u) {
			probs = append(probs, Problem{Path: d.path, Location: d.defs[u].loc, Message: badUUID(u)})
		}
	}
	for _, r := range d.refs {
		if !uuidV45.MatchString(r.value) {
			probs = append(probs, Problem{Path: d.path, Location: r.loc, Message: r.key + ": " + badUUID(r.value)})
			continue
		}
		df, ok := d.defs[r.value]
		switch {
		case !ok && r.kind != "":
			probs = append(probs, Problem{Path: d.path, Location: r.loc, Message: fmt.Sprintf("%s %s: no %s with this uuid in the document", r.key, r.value, r.kind)})
		case !ok:
			probs = append(probs, Problem{Path: d.path, Location: r.loc, Message: fmt.Sprintf("%s %s: nothing with this uuid in the document", r.key, r.value)})
		case r.kind != "" && df.kind != r.kind:
			probs = append(probs, Problem{Path: d.path, Location: r.loc, Message: fmt.Sprintf("%s %s names the %s at %s, where a %s is expected", r.key, r.value, df.kind, df.loc, r.kind)})
		}
	}
	for _, h := range d.hrefs {
		if !strings.HasPrefix(h.value, "#") {
			continue
		}
		id := h.value[1:]
		if df, ok := d.defs[id]; !ok || df.kind != "resource" {
			probs = append(probs, Problem{Path: d.path, Location: h.loc, Message: fmt.Sprintf("href %q: no back-matter resource %s in the document", h.value, id)})
		}
	}
	for _, loc := range d.empties {
		probs = append(probs, Problem{Path: d.path, Location: loc, Message: "empty string"})
	}
	return probs
}

func badUUID(u string) string {
	if anyUUID.MatchString(u) {
		return fmt.Sprintf("uuid %s is version %c; OSCAL allows versions 4 and 5 only", u, u[14])
	}
	return fmt.Sprintf("%q is not a UUID", u)
}

// againstCatalog are the document's references the catalog does not define.
func (d *document) againstCatalog(cat *document) []Problem {
	var probs []Problem
	check := func(refs []ref, kinds ...string) {
		for _, r := range refs {
			df, ok := cat.ids[r.value]
			good := false
			for _, k := range kinds {
				good = good || (ok && df.kind == k)
			}
			if !good {
				probs = append(probs, Problem{Path: d.path, Location: r.loc,
					Message: fmt.Sprintf("%s %q: no %s with this id in %s", r.key, r.value, strings.Join(kinds, " or "), CatalogPath)})
			}
		}
	}
	check(d.controlRefs, "control")
	check(d.paramRefs, "param")
	check(d.targetRefs, "part")
	return probs
}

// pointerEscape escapes a key for a JSON pointer (RFC 6901).
func pointerEscape(k string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(k)
}
