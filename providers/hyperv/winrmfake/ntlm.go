package winrmfake

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/http"
	"strings"
	"unicode/utf16"

	"golang.org/x/crypto/md4" //nolint:staticcheck // NTLM's NT hash is MD4 by definition (MS-NLMP 3.3.1)
)

// NTLM authentication (MS-NLMP), as WinRM's Negotiate scheme answers it:
// a request without credentials is answered 401 "Negotiate"; the client's
// NEGOTIATE_MESSAGE is answered 401 with a CHALLENGE_MESSAGE; its
// AUTHENTICATE_MESSAGE is checked (NTLMv2: NTProofStr over the server
// challenge and the client's blob) and the request served. The challenge is
// kept per TCP connection, where the handshake runs. No session security:
// the fake does not seal messages (NTLM message encryption over HTTP).

const ntlmSignature = "NTLMSSP\x00"

// ntlmFlags the challenge offers: Unicode, request target, NTLM, always
// sign, target type domain, extended session security, target info, 128
// and 56 bit; no LM key, no key exchange.
const ntlmFlags = 0x00000001 | 0x00000004 | 0x00000200 | 0x00008000 | 0x00010000 | 0x00080000 | 0x00800000 | 0x20000000 | 0x80000000

// ntlmAuth checks a request's NTLM handshake; it answers the 401s itself
// and reports whether the request is authenticated.
func (s *Server) ntlmAuth(w http.ResponseWriter, r *http.Request) bool {
	scheme, data, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	msg, err := base64.StdEncoding.DecodeString(strings.TrimSpace(data))
	if (scheme != "Negotiate" && scheme != "NTLM") || err != nil || len(msg) < 12 || string(msg[:8]) != ntlmSignature {
		s.unauthorized(w, "")
		return false
	}
	switch binary.LittleEndian.Uint32(msg[8:]) {
	case 1:
		var challenge [8]byte
		if _, err := rand.Read(challenge[:]); err != nil {
			panic(err)
		}
		s.mu.Lock()
		s.challenges[r.RemoteAddr] = challenge
		s.mu.Unlock()
		s.unauthorized(w, scheme+" "+base64.StdEncoding.EncodeToString(s.challengeMessage(challenge)))
		return false
	case 3:
		// The challenge of this connection; failing that, any outstanding
		// one: Go's transport may send the AUTHENTICATE on a new
		// connection when the CHALLENGE's connection is not yet back in
		// its idle pool (a real server would refuse that; see doc.go).
		s.mu.Lock()
		candidates := make([][8]byte, 0, len(s.challenges))
		if c, ok := s.challenges[r.RemoteAddr]; ok {
			candidates = append(candidates, c)
		}
		for addr, c := range s.challenges {
			if addr != r.RemoteAddr {
				candidates = append(candidates, c)
			}
		}
		s.mu.Unlock()
		for _, c := range candidates {
			if s.checkAuthenticate(msg, c) {
				s.mu.Lock()
				for addr, o := range s.challenges {
					if o == c {
						delete(s.challenges, addr)
					}
				}
				s.mu.Unlock()
				return true
			}
		}
		s.log.Info("winrmfake: NTLM authentication refused")
	}
	s.unauthorized(w, "")
	return false
}

func (s *Server) unauthorized(w http.ResponseWriter, challenge string) {
	if challenge != "" {
		w.Header().Set("WWW-Authenticate", challenge)
	} else {
		w.Header().Add("WWW-Authenticate", "Negotiate")
	}
	w.WriteHeader(http.StatusUnauthorized)
}

// splitUser is the account's domain and user name (DOMAIN\user).
func (s *Server) splitUser() (domain, user string) {
	if d, u, ok := strings.Cut(s.user, `\`); ok {
		return d, u
	}
	return "WINRMFAKE", s.user
}

// challengeMessage is a CHALLENGE_MESSAGE (MS-NLMP 2.2.1.2) naming the
// account's domain as target, with target info (domain and computer
// names).
func (s *Server) challengeMessage(challenge [8]byte) []byte {
	domain, _ := s.splitUser()
	target := utf16le(domain)
	var info []byte
	av := func(id uint16, v []byte) {
		info = binary.LittleEndian.AppendUint16(info, id)
		info = binary.LittleEndian.AppendUint16(info, uint16(len(v)))
		info = append(info, v...)
	}
	av(2, target)                 // MsvAvNbDomainName
	av(1, utf16le("HYPERV-HOST")) // MsvAvNbComputerName
	av(0, nil)                    // MsvAvEOL
	const head = 56
	b := make([]byte, head)
	copy(b, ntlmSignature)
	le := binary.LittleEndian
	le.PutUint32(b[8:], 2)
	le.PutUint16(b[12:], uint16(len(target)))
	le.PutUint16(b[14:], uint16(len(target)))
	le.PutUint32(b[16:], head)
	le.PutUint32(b[20:], ntlmFlags)
	copy(b[24:32], challenge[:])
	le.PutUint16(b[40:], uint16(len(info)))
	le.PutUint16(b[42:], uint16(len(info)))
	le.PutUint32(b[44:], uint32(head+len(target)))
	copy(b[48:], []byte{10, 0, 0x61, 0x4a, 0, 0, 0, 15}) // version 10.0.19041, NTLM revision 15
	return append(append(b, target...), info...)
}

// checkAuthenticate verifies an AUTHENTICATE_MESSAGE's NTLMv2 response
// for the account (MS-NLMP 3.3.2).
func (s *Server) checkAuthenticate(msg []byte, challenge [8]byte) bool {
	field := func(at int) ([]byte, error) {
		if len(msg) < at+8 {
			return nil, errors.New("short")
		}
		n, off := int(binary.LittleEndian.Uint16(msg[at:])), int(binary.LittleEndian.Uint32(msg[at+4:]))
		if off < 0 || off+n > len(msg) {
			return nil, errors.New("outside")
		}
		return msg[off : off+n], nil
	}
	nt, err1 := field(20)
	domain, err2 := field(28)
	user, err3 := field(36)
	if err := errors.Join(err1, err2, err3); err != nil || len(nt) < 16+28 {
		return false
	}
	wantDomain, wantUser := s.splitUser()
	if !strings.EqualFold(fromUTF16LE(user), wantUser) || !strings.EqualFold(fromUTF16LE(domain), wantDomain) {
		return false
	}
	h := md4.New()
	h.Write(utf16le(s.pass))
	key := hmacMD5(h.Sum(nil), utf16le(strings.ToUpper(fromUTF16LE(user))+fromUTF16LE(domain)))
	proof := hmacMD5(key, append(challenge[:], nt[16:]...))
	return subtle.ConstantTimeCompare(proof, nt[:16]) == 1
}

func hmacMD5(key, data []byte) []byte {
	m := hmac.New(md5.New, key)
	m.Write(data)
	return m.Sum(nil)
}

func fromUTF16LE(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u))
}
