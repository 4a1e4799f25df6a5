package sse

import (
	"bytes"
	"errors"
)

// Event is one event read by a Parser.
type Event struct {
	// Name is the event field; "" when the event had none, which a client
	// treats as "message".
	Name string
	// Data is the data lines joined with LF. It is the caller's to keep.
	Data []byte
	// ID is the id field, if any.
	ID string
}

// ErrEventTooLarge is returned when one event outgrows the parser's limit.
var ErrEventTooLarge = errors.New("sse: event exceeds size limit")

// Parser reads an event stream incrementally, as the WHATWG HTML standard's
// event-stream interpretation describes: lines end in CRLF, LF or CR;
// comments and unknown fields are ignored; an event is dispatched at a
// blank line if it has data. Feed it bytes as they arrive.
type Parser struct {
	// MaxEventSize bounds the bytes buffered for one event (pending line
	// plus data); 0 means no bound.
	MaxEventSize int

	line    []byte // the incomplete line carried over between Feeds
	skipLF  bool   // the previous chunk ended in CR: an LF next is part of it
	name    string
	id      string
	data    []byte
	hasData bool
}

// Feed parses chunk and calls emit for every event it completes. An error
// from emit stops parsing and is returned.
func (p *Parser) Feed(chunk []byte, emit func(Event) error) error {
	if p.skipLF && len(chunk) > 0 {
		if chunk[0] == '\n' {
			chunk = chunk[1:]
		}
		p.skipLF = false
	}
	for len(chunk) > 0 {
		i := bytes.IndexAny(chunk, "\r\n")
		if i < 0 {
			p.line = append(p.line, chunk...)
			return p.checkSize()
		}
		var line []byte
		if len(p.line) > 0 {
			p.line = append(p.line, chunk[:i]...)
			line = p.line
		} else {
			line = chunk[:i]
		}
		if chunk[i] == '\r' {
			if i+1 == len(chunk) {
				p.skipLF = true
			} else if chunk[i+1] == '\n' {
				i++
			}
		}
		chunk = chunk[i+1:]
		if err := p.processLine(line, emit); err != nil {
			return err
		}
		p.line = p.line[:0]
		if err := p.checkSize(); err != nil {
			return err
		}
	}
	return nil
}

func (p *Parser) checkSize() error {
	if p.MaxEventSize > 0 && len(p.line)+len(p.data) > p.MaxEventSize {
		return ErrEventTooLarge
	}
	return nil
}

func (p *Parser) processLine(line []byte, emit func(Event) error) error {
	if len(line) == 0 {
		return p.dispatch(emit)
	}
	if line[0] == ':' {
		return nil
	}
	field, value := line, []byte(nil)
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		field, value = line[:i], line[i+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	switch string(field) {
	case "event":
		p.name = string(value)
	case "data":
		if p.hasData {
			p.data = append(p.data, '\n')
		}
		p.data = append(p.data, value...)
		p.hasData = true
	case "id":
		if bytes.IndexByte(value, 0) < 0 {
			p.id = string(value)
		}
	}
	return nil
}

func (p *Parser) dispatch(emit func(Event) error) error {
	if !p.hasData {
		p.name = ""
		return nil
	}
	ev := Event{Name: p.name, Data: bytes.Clone(p.data), ID: p.id}
	p.name, p.data, p.hasData = "", p.data[:0], false
	return emit(ev)
}

// Pending reports whether an event was begun but not finished: a stream
// that ends there was cut short.
func (p *Parser) Pending() bool {
	return p.hasData || len(p.line) > 0
}
