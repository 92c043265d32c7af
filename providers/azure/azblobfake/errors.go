package azblobfake

import (
	"encoding/xml"
	"net/http"
	"strconv"
)

// storageError is an error answer of the Blob service: an HTTP status, the
// error code (also sent as x-ms-error-code) and the message of the Blob
// service error code table, plus optional detail elements such as
// HeaderName/HeaderValue or AuthenticationErrorDetail.
type storageError struct {
	status  int
	code    string
	message string
	extra   [][2]string // element name, text
	header  http.Header // extra response headers (Content-Range on 416)
}

func (e *storageError) Error() string { return e.code + ": " + e.message }

func (e *storageError) with(name, value string) *storageError {
	e.extra = append(e.extra, [2]string{name, value})
	return e
}

func newErr(status int, code, message string) *storageError {
	return &storageError{status: status, code: code, message: message}
}

// The error codes below are those of the Blob service's and the common
// storage error code tables, with their statuses and messages.

func errInvalidHeader(name, value string) *storageError {
	return newErr(400, "InvalidHeaderValue", "The value for one of the HTTP headers is not in the correct format.").
		with("HeaderName", name).with("HeaderValue", value)
}

func errMissingHeader(name string) *storageError {
	return newErr(400, "MissingRequiredHeader", "An HTTP header that's mandatory for this request is not specified.").
		with("HeaderName", name)
}

func errInvalidQuery(name, value, reason string) *storageError {
	e := newErr(400, "InvalidQueryParameterValue", "Value for one of the query parameters specified in the request URI is invalid.").
		with("QueryParameterName", name).with("QueryParameterValue", value)
	if reason != "" {
		e.with("Reason", reason)
	}
	return e
}

func errOutOfRangeQuery(name, value string) *storageError {
	return newErr(400, "OutOfRangeQueryParameterValue", "One of the query parameters specified in the request URI is outside the permissible range.").
		with("QueryParameterName", name).with("QueryParameterValue", value)
}

func errAuthFailed(detail string) *storageError {
	return newErr(403, "AuthenticationFailed", "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.").
		with("AuthenticationErrorDetail", detail)
}

var (
	errContainerNotFound = func() *storageError {
		return newErr(404, "ContainerNotFound", "The specified container does not exist.")
	}
	errContainerExists = func() *storageError {
		return newErr(409, "ContainerAlreadyExists", "The specified container already exists.")
	}
	errBlobNotFound     = func() *storageError { return newErr(404, "BlobNotFound", "The specified blob does not exist.") }
	errBlobExists       = func() *storageError { return newErr(409, "BlobAlreadyExists", "The specified blob already exists.") }
	errResourceNotFound = func() *storageError { return newErr(404, "ResourceNotFound", "The specified resource does not exist.") }
	errInvalidBlobType  = func() *storageError {
		return newErr(409, "InvalidBlobType", "The blob type is invalid for this operation.")
	}
	errInvalidPageRange = func() *storageError { return newErr(416, "InvalidPageRange", "The page range specified is invalid.") }
	errConditionNotMet  = func() *storageError {
		return newErr(412, "ConditionNotMet", "The condition specified using HTTP conditional header(s) is not met.")
	}
	errSeqConditionNotMet = func() *storageError {
		return newErr(412, "SequenceNumberConditionNotMet", "The sequence number condition specified was not met.")
	}
	errMd5Mismatch = func() *storageError {
		return newErr(400, "Md5Mismatch", "The MD5 value specified in the request did not match with the MD5 value calculated by the server.")
	}
	errBodyTooLarge = func() *storageError {
		return newErr(413, "RequestBodyTooLarge", "The request body is too large and exceeds the maximum permissible limit.")
	}
	errMissingLength = func() *storageError {
		return newErr(411, "MissingContentLengthHeader", "The Content-Length header was not specified.")
	}
	errInvalidResourceName = func() *storageError {
		return newErr(400, "InvalidResourceName", "The specified resource name contains invalid characters.")
	}
	errOutOfRangeInput = func() *storageError {
		return newErr(400, "OutOfRangeInput", "One of the request inputs is out of range.")
	}
	errUnsupportedVerb = func() *storageError {
		return newErr(405, "UnsupportedHttpVerb", "The resource doesn't support the specified HTTP verb.")
	}
	errInvalidAuthInfo = func() *storageError {
		return newErr(400, "InvalidAuthenticationInfo", "Authentication information is not given in the correct format. Check the value of Authorization header.")
	}
	errPermissionMismatch = func() *storageError {
		return newErr(403, "AuthorizationPermissionMismatch", "This request is not authorized to perform this operation using this permission.")
	}
	errResourceTypeMismatch = func() *storageError {
		return newErr(403, "AuthorizationResourceTypeMismatch", "This request is not authorized to perform this operation using this resource type.")
	}
	errProtocolMismatch = func() *storageError {
		return newErr(403, "AuthorizationProtocolMismatch", "This request is not authorized to perform this operation using this protocol.")
	}
	errSourceIPMismatch = func() *storageError {
		return newErr(403, "AuthorizationSourceIPMismatch", "This request is not authorized to perform this operation using this source IP {SourceIP}.")
	}
	errServerBusy = func() *storageError {
		return newErr(503, "ServerBusy", "The server is currently unable to receive requests. Please retry your request.")
	}
	errInternal = func() *storageError {
		return newErr(500, "InternalError", "The server encountered an internal error. Please retry the request.")
	}
)

func errInvalidRange(size int64) *storageError {
	e := newErr(416, "InvalidRange", "The range specified is invalid for the current size of the resource.")
	e.header = http.Header{"Content-Range": {"bytes */" + strconv.FormatInt(size, 10)}}
	return e
}

// xmlProlog starts every XML body the service sends, byte order mark included.
const xmlProlog = "\ufeff<?xml version=\"1.0\" encoding=\"utf-8\"?>"

// writeError sends e the way the service does: x-ms-error-code, and for
// anything but HEAD an XML <Error> body whose message ends with the request
// id and time.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, rc *reqCtx, e *storageError) {
	h := w.Header()
	for k, v := range e.header {
		h[k] = v
	}
	h.Set("x-ms-error-code", e.code)
	if r.Method == http.MethodHead {
		w.WriteHeader(e.status)
		return
	}
	type elem struct {
		XMLName xml.Name
		Text    string `xml:",chardata"`
	}
	doc := struct {
		XMLName xml.Name `xml:"Error"`
		Code    string   `xml:"Code"`
		Message string   `xml:"Message"`
		Extra   []elem
	}{Code: e.code, Message: e.message + "\nRequestId:" + rc.requestID + "\nTime:" + rc.start.UTC().Format("2006-01-02T15:04:05.0000000Z")}
	for _, x := range e.extra {
		doc.Extra = append(doc.Extra, elem{XMLName: xml.Name{Local: x[0]}, Text: x[1]})
	}
	body, _ := xml.Marshal(doc)
	out := append([]byte(xmlProlog), body...)
	h.Set("Content-Type", "application/xml")
	h.Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(e.status)
	_, _ = w.Write(out)
}
