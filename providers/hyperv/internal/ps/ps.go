package ps

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
)

// inputPrefix starts the text in front of every script: $b64='…';
const inputPrefix = "$b64='"

// Command is the script text to run: script with input (marshalled to
// JSON, base64-encoded) assigned to $b64 in front of it.
func Command(script string, input any) (string, error) {
	j, err := json.Marshal(input)
	if err != nil {
		return "", err
	}
	return inputPrefix + base64.StdEncoding.EncodeToString(j) + "';\n" + script, nil
}

var inputPattern = regexp.MustCompile(`^\$b64='([A-Za-z0-9+/=]*)';\n`)

// Parse splits a command made by Command into its script and its input
// JSON; ok is false for any other text.
func Parse(text string) (script string, input []byte, err error) {
	m := inputPattern.FindStringSubmatch(text)
	if m == nil {
		if strings.HasPrefix(text, inputPrefix) {
			return "", nil, errors.New("input assignment is malformed")
		}
		return "", nil, errors.New("no input assignment in front of the script")
	}
	in, err := base64.StdEncoding.DecodeString(m[1])
	if err != nil {
		return "", nil, err
	}
	return text[len(m[0]):], in, nil
}

// Reply is what every script answers.
type Reply struct {
	OK     bool            `json:"ok"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *Error          `json:"error,omitempty"`
}

// Error is a PowerShell error as a script reports it.
type Error struct {
	Type    string `json:"type"`
	Message string `json:"message"`
	ID      string `json:"id"`
}

func (e *Error) Error() string {
	if e.ID != "" {
		return e.Message + " (" + e.ID + ")"
	}
	return e.Message
}
