package driver

import (
	"database/sql/driver"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// rows is the driver.Rows of a statement run on a shared session
// (shared.go), where pgx's stdlib cannot make one: its Rows has no
// constructor. The conversions are stdlib's (pgx v5.12.0 stdlib/sql.go,
// MIT licence, Copyright (c) 2013-2021 Jack Christensen), so a column
// scans into the same Go values whichever kind of tenant ran the query.
type rows struct {
	conn       *pgx.Conn
	rows       pgx.Rows
	valueFuncs []rowValueFunc
	names      []string
	done       func(error) error // ends the pipeline once the rows are closed, given their error
	closed     bool

	skipNext, skipNextMore bool // the first row was read by the query: Next is its result
}

type rowValueFunc func(src []byte) (driver.Value, error)

var (
	_ driver.Rows                           = (*rows)(nil)
	_ driver.RowsColumnTypeDatabaseTypeName = (*rows)(nil)
	_ driver.RowsColumnTypeLength           = (*rows)(nil)
	_ driver.RowsColumnTypePrecisionScale   = (*rows)(nil)
	_ driver.RowsColumnTypeScanType         = (*rows)(nil)
)

func (r *rows) Columns() []string {
	if r.names == nil {
		fields := r.rows.FieldDescriptions()
		r.names = make([]string, len(fields))
		for i, fd := range fields {
			r.names[i] = fd.Name
		}
	}
	return r.names
}

func (r *rows) ColumnTypeDatabaseTypeName(index int) string {
	oid := r.rows.FieldDescriptions()[index].DataTypeOID
	if dt, ok := r.conn.TypeMap().TypeForOID(oid); ok {
		return strings.ToUpper(dt.Name)
	}
	return strconv.FormatInt(int64(oid), 10)
}

const varHeaderSize = 4

func (r *rows) ColumnTypeLength(index int) (int64, bool) {
	fd := r.rows.FieldDescriptions()[index]
	switch fd.DataTypeOID {
	case pgtype.TextOID, pgtype.ByteaOID:
		return math.MaxInt64, true
	case pgtype.VarcharOID, pgtype.BPCharOID:
		return int64(fd.TypeModifier - varHeaderSize), true
	case pgtype.VarbitOID:
		return int64(fd.TypeModifier), true
	}
	return 0, false
}

func (r *rows) ColumnTypePrecisionScale(index int) (precision, scale int64, ok bool) {
	fd := r.rows.FieldDescriptions()[index]
	if fd.DataTypeOID == pgtype.NumericOID {
		mod := fd.TypeModifier - varHeaderSize
		return int64((mod >> 16) & 0xffff), int64(mod & 0xffff), true
	}
	return 0, 0, false
}

func (r *rows) ColumnTypeScanType(index int) reflect.Type {
	switch r.rows.FieldDescriptions()[index].DataTypeOID {
	case pgtype.Float8OID, pgtype.NumericOID:
		return reflect.TypeFor[float64]()
	case pgtype.Float4OID:
		return reflect.TypeFor[float32]()
	case pgtype.Int8OID:
		return reflect.TypeFor[int64]()
	case pgtype.Int4OID:
		return reflect.TypeFor[int32]()
	case pgtype.Int2OID:
		return reflect.TypeFor[int16]()
	case pgtype.BoolOID:
		return reflect.TypeFor[bool]()
	case pgtype.DateOID, pgtype.TimestampOID, pgtype.TimestamptzOID:
		return reflect.TypeFor[time.Time]()
	case pgtype.ByteaOID:
		return reflect.TypeFor[[]byte]()
	}
	return reflect.TypeFor[string]()
}

func (r *rows) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	r.rows.Close()
	err := r.rows.Err()
	if derr := r.done(err); err == nil {
		err = derr
	}
	return err
}

func (r *rows) Next(dest []driver.Value) error {
	if r.valueFuncs == nil {
		r.initValueFuncs()
	}
	more := r.skipNextMore
	if r.skipNext {
		r.skipNext = false
	} else {
		more = r.rows.Next()
	}
	if !more {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return io.EOF
	}
	for i, rv := range r.rows.RawValues() {
		if rv == nil {
			dest[i] = nil
			continue
		}
		v, err := r.valueFuncs[i](rv)
		if err != nil {
			return fmt.Errorf("convert field %d failed: %w", i, err)
		}
		dest[i] = v
	}
	return nil
}

// scanAs converts a column through a value of type T, as stdlib does.
func scanAs[T any](m *pgtype.Map, fd pgconn.FieldDescription, conv func(T) (driver.Value, error)) rowValueFunc {
	var d T
	plan := m.PlanScan(fd.DataTypeOID, fd.Format, &d)
	return func(src []byte) (driver.Value, error) {
		if err := plan.Scan(src, &d); err != nil {
			return nil, err
		}
		return conv(d)
	}
}

func same[T any](v T) (driver.Value, error)             { return v, nil }
func valuer[T driver.Valuer](v T) (driver.Value, error) { return v.Value() }

func (r *rows) initValueFuncs() {
	m := r.conn.TypeMap()
	fields := r.rows.FieldDescriptions()
	r.valueFuncs = make([]rowValueFunc, len(fields))
	for i, fd := range fields {
		var f rowValueFunc
		switch fd.DataTypeOID {
		case pgtype.BoolOID:
			f = scanAs(m, fd, same[bool])
		case pgtype.ByteaOID, pgtype.JSONOID, pgtype.JSONBOID, pgtype.XMLOID:
			f = scanAs(m, fd, same[[]byte])
		case pgtype.CIDOID, pgtype.OIDOID, pgtype.XIDOID:
			f = scanAs(m, fd, valuer[pgtype.Uint32])
		case pgtype.DateOID:
			f = scanAs(m, fd, valuer[pgtype.Date])
		case pgtype.Float4OID:
			f = scanAs(m, fd, func(v float32) (driver.Value, error) { return float64(v), nil })
		case pgtype.Float8OID:
			f = scanAs(m, fd, same[float64])
		case pgtype.Int2OID:
			f = scanAs(m, fd, func(v int16) (driver.Value, error) { return int64(v), nil })
		case pgtype.Int4OID:
			f = scanAs(m, fd, func(v int32) (driver.Value, error) { return int64(v), nil })
		case pgtype.Int8OID:
			f = scanAs(m, fd, same[int64])
		case pgtype.TimestampOID:
			f = scanAs(m, fd, valuer[pgtype.Timestamp])
		case pgtype.TimestamptzOID:
			f = scanAs(m, fd, valuer[pgtype.Timestamptz])
		default:
			f = scanAs(m, fd, same[string])
		}
		r.valueFuncs[i] = f
	}
}
