package fielderr

import (
	"errors"
	"fmt"
	"testing"
)

func TestList(t *testing.T) {
	kind := errors.New("invalid thing")
	var l List
	if l.Err(kind) != nil {
		t.Fatal("an empty list is no error")
	}
	l.Addf("output", "%q is outside", "/x")
	var job List
	job.Addf("format", "must be ovf or ova")
	job.Addf("", "not supported")
	l.Nest("job", job)
	err := fmt.Errorf("create: %w", l.Err(kind))
	if !errors.Is(err, kind) {
		t.Fatal("not the kind")
	}
	want := `create: invalid thing: output: "/x" is outside; job.format: must be ovf or ova; job: not supported`
	if err.Error() != want {
		t.Fatalf("text %q", err.Error())
	}
	got, ok := Of(err)
	if !ok || len(got) != 3 || got[1].Field != "job.format" || got[2].Field != "job" {
		t.Fatalf("list %+v", got)
	}
	if _, ok := Of(kind); ok {
		t.Fatal("a plain error carries no list")
	}
}
