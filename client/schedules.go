package client

import (
	"context"
	"encoding/json"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/hypersdk/hypersdk/apitypes"
)

// ListSchedules returns every schedule by name, each with its next five
// due times.
func (c *Client) ListSchedules(ctx context.Context) ([]*apitypes.Schedule, error) {
	var out struct {
		Items []*apitypes.Schedule `json:"items"`
	}
	if err := c.get(ctx, apiPath("schedules"), nil, &out); err != nil {
		return nil, err
	}
	if out.Items == nil {
		out.Items = []*apitypes.Schedule{}
	}
	return out.Items, nil
}

// CreateSchedule stores a schedule (operator role): spec.Job is submitted
// at every due time. An invalid expression, time zone, policy or job is an
// "invalid-schedule" problem naming every mistake; a name in use is a
// "schedule-conflict". The POST is not repeated on failure.
func (c *Client) CreateSchedule(ctx context.Context, spec apitypes.ScheduleSpec) (*apitypes.Schedule, error) {
	return c.scheduleCall(ctx, http.MethodPost, apiPath("schedules"), spec)
}

// GetSchedule returns a schedule by ID or name.
func (c *Client) GetSchedule(ctx context.Context, idOrName string) (*apitypes.Schedule, error) {
	var sc apitypes.Schedule
	if err := c.get(ctx, apiPath("schedules", idOrName), nil, &sc); err != nil {
		return nil, err
	}
	return &sc, nil
}

// UpdateSchedule changes the fields patch sets (operator role); a new
// expression or time zone takes effect from now. patch.Job replaces the
// whole job template.
func (c *Client) UpdateSchedule(ctx context.Context, idOrName string, patch apitypes.SchedulePatch) (*apitypes.Schedule, error) {
	return c.scheduleCall(ctx, http.MethodPatch, apiPath("schedules", idOrName), patch)
}

// DeleteSchedule removes a schedule and its execution history; the jobs
// it submitted are kept (admin role).
func (c *Client) DeleteSchedule(ctx context.Context, idOrName string) error {
	_, err := c.call(ctx, request{method: http.MethodDelete, path: apiPath("schedules", idOrName)}, nil)
	return err
}

// EnableSchedule resumes a schedule (operator role). Its next run is the
// first due time from now: runs missed while it was paused are not made up.
func (c *Client) EnableSchedule(ctx context.Context, idOrName string) (*apitypes.Schedule, error) {
	return c.scheduleCall(ctx, http.MethodPost, apiPath("schedules", idOrName, "enable"), nil)
}

// DisableSchedule pauses a schedule (operator role).
func (c *Client) DisableSchedule(ctx context.Context, idOrName string) (*apitypes.Schedule, error) {
	return c.scheduleCall(ctx, http.MethodPost, apiPath("schedules", idOrName, "disable"), nil)
}

// RunSchedule submits a schedule's job now, whatever its overlap policy
// and even while it is paused (operator role), and returns the execution,
// recorded as a manual run; WatchJob follows its JobID. A template the
// daemon can no longer submit (a provider removed since) is an
// "invalid-schedule" problem. The POST is not repeated on failure: a retry
// after a lost answer would run the export twice.
func (c *Client) RunSchedule(ctx context.Context, idOrName string) (*apitypes.Execution, error) {
	var x apitypes.Execution
	if _, err := c.call(ctx, request{method: http.MethodPost, path: apiPath("schedules", idOrName, "run")}, &x); err != nil {
		return nil, err
	}
	return &x, nil
}

// ScheduleHistory returns one page of a schedule's executions, newest
// first. cursor continues from a previous page's NextCursor; limit is the
// page size (0: the server's default of 100, at most 1000).
func (c *Client) ScheduleHistory(ctx context.Context, idOrName, cursor string, limit int) (*apitypes.ExecutionList, error) {
	q := url.Values{}
	setIf(q, "cursor", cursor)
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out apitypes.ExecutionList
	if err := c.get(ctx, apiPath("schedules", idOrName, "history"), q, &out); err != nil {
		return nil, err
	}
	if out.Items == nil {
		out.Items = []*apitypes.Execution{}
	}
	return &out, nil
}

// AllScheduleHistory yields every execution of a schedule, newest first,
// following cursors with pages of pageSize (0: the server's default).
// Iteration stops at the first error, which is yielded with a nil
// execution.
func (c *Client) AllScheduleHistory(ctx context.Context, idOrName string, pageSize int) iter.Seq2[*apitypes.Execution, error] {
	return func(yield func(*apitypes.Execution, error) bool) {
		cursor := ""
		for {
			page, err := c.ScheduleHistory(ctx, idOrName, cursor, pageSize)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, x := range page.Items {
				if !yield(x, nil) {
					return
				}
			}
			if page.NextCursor == "" || page.NextCursor == cursor {
				return
			}
			cursor = page.NextCursor
		}
	}
}

// SchedulePreview is the answer of PreviewSchedule.
type SchedulePreview struct {
	Schedule string `json:"schedule"`
	// Timezone is the zone the expression was read in ("UTC" when none
	// was given).
	Timezone string `json:"timezone"`
	// Next are the due times, in UTC.
	Next []time.Time `json:"next"`
}

// PreviewSchedule returns the next n due times (0: 5, at most 100) of an
// expression read in the IANA time zone tz ("" for UTC), as the daemon
// would compute them, without saving anything. An invalid expression or
// zone is an "invalid-schedule" problem.
func (c *Client) PreviewSchedule(ctx context.Context, expr, tz string, n int) (*SchedulePreview, error) {
	body, err := json.Marshal(apitypes.PreviewRequest{Schedule: expr, Timezone: tz, Count: n})
	if err != nil {
		return nil, err
	}
	var out SchedulePreview
	if _, err := c.call(ctx, request{method: http.MethodPost, path: apiPath("schedules", "preview"), body: body}, &out); err != nil {
		return nil, err
	}
	if out.Next == nil {
		out.Next = []time.Time{}
	}
	return &out, nil
}

// scheduleCall sends body (when non-nil) and decodes a schedule.
func (c *Client) scheduleCall(ctx context.Context, method, path string, body any) (*apitypes.Schedule, error) {
	r := request{method: method, path: path}
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		r.body = b
	}
	var sc apitypes.Schedule
	if _, err := c.call(ctx, r, &sc); err != nil {
		return nil, err
	}
	return &sc, nil
}
