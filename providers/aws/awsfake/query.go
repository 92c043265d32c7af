package awsfake

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// query is a decoded EC2 Query request: a flat form where lists are
// numbered from 1 (InstanceId.1, Filter.2.Value.1, …).
type query url.Values

func (q query) get(key string) string { return url.Values(q).Get(key) }

// list returns prefix.1, prefix.2, … up to the first missing index, as the
// SDK numbers them contiguously.
func (q query) list(prefix string) []string {
	var out []string
	for i := 1; ; i++ {
		vs, ok := q[prefix+"."+strconv.Itoa(i)]
		if !ok || len(vs) == 0 {
			return out
		}
		out = append(out, vs[0])
	}
}

// tags returns prefix.N.Key / prefix.N.Value pairs in order.
func (q query) tags(prefix string) []ec2Tag {
	var out []ec2Tag
	for i := 1; ; i++ {
		p := prefix + "." + strconv.Itoa(i)
		if _, ok := q[p+".Key"]; !ok {
			return out
		}
		out = append(out, ec2Tag{Key: q.get(p + ".Key"), Value: q.get(p + ".Value")})
	}
}

func (q query) bool(key string) bool { return strings.EqualFold(q.get(key), "true") }

// A filter is one Filter.N: a resource matches when one of its values for
// Name matches one of Values (with EC2's * and ? wildcards).
type filter struct {
	Name   string
	Values []string
}

func (q query) filters() []filter {
	var out []filter
	for i := 1; ; i++ {
		p := "Filter." + strconv.Itoa(i)
		if _, ok := q[p+".Name"]; !ok {
			return out
		}
		out = append(out, filter{Name: q.get(p + ".Name"), Values: q.list(p + ".Value")})
	}
}

// matchFilters reports whether a resource passes every filter. values
// returns the resource's values for a filter name and whether the name is
// one this resource type supports; an unsupported name is the error EC2
// answers.
func matchFilters(fs []filter, values func(name string) ([]string, bool)) (bool, error) {
	for _, f := range fs {
		have, known := values(f.Name)
		if !known {
			return false, &apiError{http.StatusBadRequest, "InvalidParameterValue", fmt.Sprintf("The filter '%s' is invalid", f.Name)}
		}
		if !anyMatch(f.Values, have) {
			return false, nil
		}
	}
	return true, nil
}

// tagFilterValues answers the tag:<key> and tag-key filters.
func tagFilterValues(name string, tags map[string]string) ([]string, bool) {
	if key, ok := strings.CutPrefix(name, "tag:"); ok {
		if v, ok := tags[key]; ok {
			return []string{v}, true
		}
		return nil, true
	}
	if name == "tag-key" {
		keys := make([]string, 0, len(tags))
		for k := range tags {
			keys = append(keys, k)
		}
		return keys, true
	}
	return nil, false
}

func anyMatch(patterns, values []string) bool {
	for _, p := range patterns {
		for _, v := range values {
			if globMatch(p, v) {
				return true
			}
		}
	}
	return false
}

// globMatch matches s against an EC2 filter value: * is any run, ? any one
// character, and a backslash makes the next character literal.
func globMatch(pattern, s string) bool {
	p, str := []rune(pattern), []rune(s)
	// Iterative matching with one backtrack point for the last *.
	pi, si, starP, starS := 0, 0, -1, 0
	for si < len(str) {
		switch {
		case pi < len(p) && p[pi] == '*':
			starP, starS = pi, si
			pi++
		case pi < len(p) && p[pi] == '?':
			pi, si = pi+1, si+1
		case pi+1 < len(p) && p[pi] == '\\' && p[pi+1] == str[si]:
			pi, si = pi+2, si+1
		case pi < len(p) && p[pi] != '\\' && p[pi] == str[si]:
			pi, si = pi+1, si+1
		case starP >= 0:
			starS++
			pi, si = starP+1, starS
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// paginate cuts items by MaxResults and NextToken. A request without
// MaxResults gets everything; MaxResults outside [lo, hi] is refused as EC2
// refuses it. Tokens are opaque to clients and bound to the action.
func paginate[T any](q query, action string, items []T, lo, hi int) ([]T, string, error) {
	start := 0
	if tok := q.get("NextToken"); tok != "" {
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		rest, ok := strings.CutPrefix(string(raw), action+":")
		n, convErr := strconv.Atoi(rest)
		if err != nil || !ok || convErr != nil || n < 0 || n > len(items) {
			return nil, "", &apiError{http.StatusBadRequest, "InvalidPaginationToken", "The specified pagination token is not valid or is expired."}
		}
		start = n
	}
	max := len(items) - start
	if s := q.get("MaxResults"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < lo || n > hi {
			return nil, "", &apiError{http.StatusBadRequest, "InvalidParameterValue",
				fmt.Sprintf("Value ( %s ) for parameter maxResults is invalid. Expecting a value between %d and %d.", s, lo, hi)}
		}
		max = min(max, n)
	}
	end := start + max
	next := ""
	if end < len(items) {
		next = base64.RawURLEncoding.EncodeToString([]byte(action + ":" + strconv.Itoa(end)))
	}
	return items[start:end], next, nil
}

// refuseIDsWithMaxResults is EC2's rule that an id list and MaxResults
// cannot be combined in one Describe call.
func refuseIDsWithMaxResults(q query, ids []string, param string) error {
	if len(ids) > 0 && q.get("MaxResults") != "" {
		return &apiError{http.StatusBadRequest, "InvalidParameterCombination",
			fmt.Sprintf("The parameter %s cannot be used with the parameter maxResults", param)}
	}
	return nil
}
