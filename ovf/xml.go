package ovf

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The descriptor is kept as a small XML tree rather than decoded into
// structs: vSphere and VirtualBox descriptors carry many elements and
// extension namespaces we do not model, and encoding/xml's Marshal rewrites
// prefixes and drops what no field captures. The tree keeps every element,
// attribute, prefix, comment and whitespace so a descriptor we edit comes
// out as close to the original as XML allows.

const (
	nsXML   = "http://www.w3.org/XML/1998/namespace"
	nsXMLNS = "http://www.w3.org/2000/xmlns/"

	// maxDepth bounds nesting so hostile input cannot exhaust the stack of
	// the recursive serializer; real descriptors nest fewer than 10 levels.
	maxDepth = 128
)

type node interface{ isNode() }

type element struct {
	parent   *element
	prefix   string // prefix as written, "" when unprefixed
	local    string
	space    string // resolved namespace URI
	attrs    []attr
	children []node
}

type attr struct {
	prefix string // "xmlns" for prefixed declarations
	local  string // "xmlns" with empty prefix for the default declaration
	space  string // resolved namespace URI; "" for unprefixed attributes
	value  string
}

type textNode string

type commentNode string

type procInstNode struct {
	target string
	inst   string
}

func (*element) isNode()     {}
func (textNode) isNode()     {}
func (commentNode) isNode()  {}
func (procInstNode) isNode() {}

// document is a parsed XML document: nodes before the root (comments and
// processing instructions), the root, and nodes after it.
type document struct {
	prolog []node
	root   *element
	epilog []node
}

func (a attr) isNamespaceDecl() bool {
	return a.prefix == "xmlns" || (a.prefix == "" && a.local == "xmlns")
}

// lookupPrefix resolves prefix in the scope of e. ok is false when the prefix
// is not declared.
func (e *element) lookupPrefix(prefix string) (uri string, ok bool) {
	switch prefix {
	case "xml":
		return nsXML, true
	case "xmlns":
		return nsXMLNS, true
	}
	for el := e; el != nil; el = el.parent {
		for _, a := range el.attrs {
			if prefix == "" && a.prefix == "" && a.local == "xmlns" {
				return a.value, true
			}
			if prefix != "" && a.prefix == "xmlns" && a.local == prefix {
				return a.value, true
			}
		}
	}
	if prefix == "" {
		return "", true // no default namespace in scope
	}
	return "", false
}

// isNCName reports whether s is a valid namespace prefix (an XML NCName).
func isNCName(s string) bool {
	for i, r := range s {
		switch {
		case r == '_' || unicode.IsLetter(r):
		case i > 0 && (r == '-' || r == '.' || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r)):
		default:
			return false
		}
	}
	return s != ""
}

// prefixFor returns a non-empty prefix bound to uri in the scope of e, if any.
func (e *element) prefixFor(uri string) (string, bool) {
	for el := e; el != nil; el = el.parent {
		for _, a := range el.attrs {
			// A declaration with a prefix that is not a valid XML name
			// (encoding/xml lets some through) cannot be used to qualify.
			if a.prefix == "xmlns" && a.value == uri && isNCName(a.local) {
				// The binding counts only if no nearer element rebinds it.
				if got, _ := e.lookupPrefix(a.local); got == uri {
					return a.local, true
				}
			}
		}
	}
	return "", false
}

func (e *element) attrValue(space, local string) (string, bool) {
	for _, a := range e.attrs {
		if a.local == local && a.space == space && !a.isNamespaceDecl() {
			return a.value, true
		}
	}
	return "", false
}

// ovfAttr reads an attribute of the OVF namespace, falling back to an
// unqualified attribute of the same name: some producers omit the prefix and
// importers such as VirtualBox accept that.
func (e *element) ovfAttr(ns, local string) (string, bool) {
	if v, ok := e.attrValue(ns, local); ok {
		return v, true
	}
	return e.attrValue("", local)
}

// attrLocal returns the first attribute named local in any namespace.
func (e *element) attrLocal(local string) (string, bool) {
	for _, a := range e.attrs {
		if a.local == local && !a.isNamespaceDecl() {
			return a.value, true
		}
	}
	return "", false
}

// setAttr replaces the value of attribute (space, local) or appends it with
// a prefix bound to space (declaring one on the root when necessary).
func (e *element) setAttr(space, local, value, preferredPrefix string) {
	for i, a := range e.attrs {
		if a.local == local && a.space == space && !a.isNamespaceDecl() {
			e.attrs[i].value = value
			return
		}
	}
	prefix := ""
	if space != "" {
		prefix = e.ensurePrefix(space, preferredPrefix)
	}
	e.attrs = append(e.attrs, attr{prefix: prefix, local: local, space: space, value: value})
}

// ensurePrefix returns a prefix bound to uri at e, declaring it on the root
// element if no binding is in scope.
func (e *element) ensurePrefix(uri, preferred string) string {
	if p, ok := e.prefixFor(uri); ok {
		return p
	}
	root := e
	for root.parent != nil {
		root = root.parent
	}
	p := preferred
	for i := 1; ; i++ {
		if _, taken := e.lookupPrefix(p); !taken {
			if _, takenAtRoot := root.lookupPrefix(p); !takenAtRoot {
				break
			}
		}
		p = fmt.Sprintf("%s%d", preferred, i)
	}
	root.attrs = append(root.attrs, attr{prefix: "xmlns", local: p, space: nsXMLNS, value: uri})
	return p
}

func (e *element) elements() []*element {
	var out []*element
	for _, c := range e.children {
		if ce, ok := c.(*element); ok {
			out = append(out, ce)
		}
	}
	return out
}

func (e *element) child(space, local string) *element {
	for _, c := range e.children {
		if ce, ok := c.(*element); ok && ce.local == local && ce.space == space {
			return ce
		}
	}
	return nil
}

func (e *element) childrenNamed(space, local string) []*element {
	var out []*element
	for _, c := range e.children {
		if ce, ok := c.(*element); ok && ce.local == local && ce.space == space {
			out = append(out, ce)
		}
	}
	return out
}

// childLocal returns the first child element named local in any namespace;
// CIM property elements are matched this way because OVF 2 spreads them
// over the RASD, SASD and EPASD namespaces.
func (e *element) childLocal(local string) *element {
	for _, c := range e.children {
		if ce, ok := c.(*element); ok && ce.local == local {
			return ce
		}
	}
	return nil
}

func (e *element) text() string {
	var b strings.Builder
	for _, c := range e.children {
		if t, ok := c.(textNode); ok {
			b.WriteString(string(t))
		}
	}
	return b.String()
}

func (e *element) childText(space, local string) string {
	if c := e.child(space, local); c != nil {
		return strings.TrimSpace(c.text())
	}
	return ""
}

// parseXML parses data into a document, refusing DTDs (no entity expansion
// surprises), undeclared prefixes, mismatched tags and excessive nesting.
func parseXML(data []byte) (*document, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = true
	dec.CharsetReader = func(charset string, input io.Reader) (io.Reader, error) {
		switch strings.ToLower(charset) {
		case "us-ascii", "ascii":
			return input, nil
		}
		return nil, fmt.Errorf("unsupported encoding %q (descriptors must be UTF-8)", charset)
	}
	doc := &document{}
	var cur *element
	depth := 0
	for {
		tok, err := dec.RawToken()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if doc.root != nil && cur == nil {
				return nil, errors.New("more than one root element")
			}
			depth++
			if depth > maxDepth {
				return nil, fmt.Errorf("elements nested deeper than %d", maxDepth)
			}
			el := &element{parent: cur, prefix: t.Name.Space, local: t.Name.Local}
			for _, a := range t.Attr {
				el.attrs = append(el.attrs, attr{prefix: a.Name.Space, local: a.Name.Local, value: a.Value})
			}
			if err := resolveNames(el); err != nil {
				return nil, err
			}
			if cur == nil {
				doc.root = el
			} else {
				cur.children = append(cur.children, el)
			}
			cur = el
		case xml.EndElement:
			if cur == nil || t.Name.Space != cur.prefix || t.Name.Local != cur.local {
				return nil, fmt.Errorf("unexpected end tag </%s>", qname(t.Name.Space, t.Name.Local))
			}
			cur = cur.parent
			depth--
		case xml.CharData:
			if cur == nil {
				if len(bytes.TrimSpace(t)) != 0 {
					return nil, errors.New("text outside the root element")
				}
				continue
			}
			cur.children = append(cur.children, textNode(string(t)))
		case xml.Comment:
			n := commentNode(string(t))
			switch {
			case cur != nil:
				cur.children = append(cur.children, n)
			case doc.root == nil:
				doc.prolog = append(doc.prolog, n)
			default:
				doc.epilog = append(doc.epilog, n)
			}
		case xml.ProcInst:
			if t.Target == "xml" {
				continue // the serializer writes its own declaration
			}
			n := procInstNode{target: t.Target, inst: string(t.Inst)}
			switch {
			case cur != nil:
				cur.children = append(cur.children, n)
			case doc.root == nil:
				doc.prolog = append(doc.prolog, n)
			default:
				doc.epilog = append(doc.epilog, n)
			}
		case xml.Directive:
			return nil, errors.New("DTD and other directives are not allowed in a descriptor")
		}
	}
	if doc.root == nil {
		return nil, errors.New("no root element")
	}
	if cur != nil {
		return nil, fmt.Errorf("unclosed element <%s>", qname(cur.prefix, cur.local))
	}
	return doc, nil
}

// resolveNames fills in the namespace URIs of el and its attributes and
// rejects undeclared prefixes and duplicate attributes.
func resolveNames(el *element) error {
	if el.prefix == "xmlns" {
		return fmt.Errorf("element <%s> uses the reserved prefix xmlns", qname(el.prefix, el.local))
	}
	uri, ok := el.lookupPrefix(el.prefix)
	if !ok {
		return fmt.Errorf("element <%s>: undeclared namespace prefix %q", qname(el.prefix, el.local), el.prefix)
	}
	el.space = uri
	type key struct{ space, local string }
	seen := make(map[key]bool, len(el.attrs))
	for i := range el.attrs {
		a := &el.attrs[i]
		switch {
		case a.isNamespaceDecl():
			a.space = nsXMLNS
			if a.prefix == "xmlns" && a.value == "" {
				return fmt.Errorf("element <%s>: prefix %q bound to an empty namespace", qname(el.prefix, el.local), a.local)
			}
		case a.prefix == "":
			a.space = ""
		default:
			u, ok := el.lookupPrefix(a.prefix)
			if !ok {
				return fmt.Errorf("attribute %s: undeclared namespace prefix %q", qname(a.prefix, a.local), a.prefix)
			}
			a.space = u
		}
		k := key{a.space, a.local}
		if a.isNamespaceDecl() {
			k = key{"xmlns:" + a.prefix, a.local}
		}
		if seen[k] {
			return fmt.Errorf("element <%s>: duplicate attribute %s", qname(el.prefix, el.local), qname(a.prefix, a.local))
		}
		seen[k] = true
	}
	return nil
}

func qname(prefix, local string) string {
	if prefix == "" {
		return local
	}
	return prefix + ":" + local
}

// marshal serializes the document as UTF-8 with a standard declaration.
func (d *document) marshal() []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	for _, n := range d.prolog {
		writeNode(&b, n)
		b.WriteByte('\n')
	}
	writeNode(&b, d.root)
	b.WriteByte('\n')
	for _, n := range d.epilog {
		writeNode(&b, n)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func writeNode(b *bytes.Buffer, n node) {
	switch t := n.(type) {
	case *element:
		b.WriteByte('<')
		b.WriteString(qname(t.prefix, t.local))
		for _, a := range t.attrs {
			b.WriteByte(' ')
			b.WriteString(qname(a.prefix, a.local))
			b.WriteString(`="`)
			escape(b, a.value, true)
			b.WriteByte('"')
		}
		if len(t.children) == 0 {
			b.WriteString("/>")
			return
		}
		b.WriteByte('>')
		for _, c := range t.children {
			writeNode(b, c)
		}
		b.WriteString("</")
		b.WriteString(qname(t.prefix, t.local))
		b.WriteByte('>')
	case textNode:
		escape(b, string(t), false)
	case commentNode:
		b.WriteString("<!--")
		// A comment must not contain "--"; a parsed one cannot, this guards
		// against future programmatic comments.
		b.WriteString(strings.ReplaceAll(string(t), "--", "- -"))
		b.WriteString("-->")
	case procInstNode:
		b.WriteString("<?")
		b.WriteString(t.target)
		if t.inst != "" {
			b.WriteByte(' ')
			b.WriteString(t.inst)
		}
		b.WriteString("?>")
	}
}

// escape writes s with XML escaping. In attributes, tab, newline and CR are
// written as character references so they survive attribute-value
// normalization; characters XML cannot represent become U+FFFD so the output
// is always well formed.
func escape(b *bytes.Buffer, s string, inAttr bool) {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == '&':
			b.WriteString("&amp;")
		case r == '<':
			b.WriteString("&lt;")
		case r == '>':
			b.WriteString("&gt;")
		case r == '"' && inAttr:
			b.WriteString("&quot;")
		case r == '\r':
			b.WriteString("&#xD;")
		case r == '\n' && inAttr:
			b.WriteString("&#xA;")
		case r == '\t' && inAttr:
			b.WriteString("&#x9;")
		case r == utf8.RuneError && size == 1, !isXMLChar(r):
			b.WriteString("\uFFFD")
		default:
			b.WriteRune(r)
		}
	}
}

func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		(r >= 0x20 && r <= 0xD7FF) ||
		(r >= 0xE000 && r <= 0xFFFD) ||
		(r >= 0x10000 && r <= 0x10FFFF)
}

// validXMLString reports whether s can be written to XML unchanged.
func validXMLString(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !isXMLChar(r) {
			return false
		}
	}
	return true
}

// indent inserts whitespace so a built tree serializes one element per line.
// It only touches elements whose children are all elements.
func indent(e *element, depth int) {
	els := e.elements()
	if len(els) == 0 || len(els) != len(e.children) {
		return
	}
	pad := "\n" + strings.Repeat("  ", depth+1)
	out := make([]node, 0, 2*len(els)+1)
	for _, c := range els {
		out = append(out, textNode(pad), c)
		indent(c, depth+1)
	}
	out = append(out, textNode("\n"+strings.Repeat("  ", depth)))
	e.children = out
}
