package rx

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/callbacks"
	"gorm.io/gorm/schema"
)

// Reading state from the database. Every read is batched: one query for the
// rows of a layer, one per relation for the id lists, whatever the number
// of rows.

const chunkSize = 500

// row is one freshly read row: its scalar fields (belongs-to relations
// included as ids), its owner, and its belongs-to targets.
type row struct {
	fields  map[string]json.RawMessage
	owner   string
	belongs map[*relation]string // target id, "" for none
	fks     []string             // for each relation of layer.parents, in order: the parent id this row points at
}

// fk returns the parent id the row points at through its layer's i-th
// parent relation; "" when none, or when the relation was registered after
// the row was read.
func (r *row) fk(i int) string {
	if i < len(r.fks) {
		return r.fks[i]
	}
	return ""
}

// readContext returns the context of the engine's reads of db: on SQLite,
// ctx without its cancellation (its values stay). go-sqlite3 steps each row
// of a query whose context can be cancelled on a goroutine of its own, to
// interrupt it on cancellation, and database/sql starts one more per query
// to close it: three goroutines and their channels for a one-row read, on
// the path of every commit's delta. A read by key of a local file ends in
// microseconds, and Hub.Close waits for it. On a server database a read
// can wait on the network or a lock, and stays cancellable.
func readContext(ctx context.Context, db *gorm.DB) context.Context {
	if db.Dialector.Name() == "sqlite" {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

// member is one element of a relation list.
type member struct {
	id    string
	owner string
}

// readRows reads rows of l by primary key into out (nil: a new map) and
// returns it. Missing ids are absent from it (deleted, soft-deleted or
// never existed). The engine passes a map it reuses: a map per commit's
// one-row read was a fifth of that read's garbage.
func readRows(ctx context.Context, db *gorm.DB, l *layer, ids []string, out map[string]*row) (map[string]*row, error) {
	ctx = readContext(ctx, db)
	if out == nil {
		out = make(map[string]*row, len(ids))
	}
	if len(ids) == 1 {
		if q := l.oneRowSQL(db); q != "" {
			return out, readOneRow(ctx, db, l, q, ids[0], out)
		}
	}
	for start := 0; start < len(ids); start += chunkSize {
		end := min(start+chunkSize, len(ids))
		slice := reflect.New(reflect.SliceOf(l.typ))
		err := db.WithContext(ctx).Where(map[string]any{l.pk.DBName: keyArgs(l.pk, ids[start:end])}).Find(slice.Interface()).Error
		if err != nil {
			return nil, fmt.Errorf("rx: read %s rows: %w", l.name, err)
		}
		sv := slice.Elem()
		for i := 0; i < sv.Len(); i++ {
			r, id, err := encodeRow(ctx, l, sv.Index(i))
			if err != nil {
				return nil, err
			}
			out[id] = r
		}
	}
	return out, nil
}

// oneRowSQL returns the query that reads one row of l by primary key, as
// GORM builds it for readRows (soft-delete conditions included), or "" when
// it has other arguments than the key. It is built once per layer: the
// engine re-reads one row per commit, and building the statement through
// GORM each time made most of a commit's garbage, whose collections were
// the latency tail under load (docs/BENCHMARKS.md).
func (l *layer) oneRowSQL(db *gorm.DB) string {
	l.one.Do(func() {
		// Built as GORM's query callback builds it, without running the
		// callbacks (which would see a query that never runs).
		tx := db.Session(&gorm.Session{DryRun: true}).Where(map[string]any{l.pk.DBName: keyArgs(l.pk, []string{"0"})[0]})
		dest := reflect.New(reflect.SliceOf(l.typ)).Interface()
		tx.Statement.Model, tx.Statement.Dest = dest, dest
		tx.Statement.BuildClauses = db.Callback().Query().Clauses
		if err := tx.Statement.Parse(dest); err != nil {
			return
		}
		callbacks.BuildQuerySQL(tx)
		if tx.Error == nil && len(tx.Statement.Vars) == 1 {
			l.oneSQL = tx.Statement.SQL.String()
		}
	})
	return l.oneSQL
}

// readOneRow reads row id of l with query q (from oneRowSQL), scanning it
// the way GORM's Find does: each column into the schema field of its name
// through the field's own value pool and setter.
//
// The query goes to the connection pool past GORM's callbacks (so plugins
// that trace queries through callbacks do not see it), but GORM's logger
// is told of it as of any query: slow ones are logged.
func readOneRow(ctx context.Context, db *gorm.DB, l *layer, q, id string, out map[string]*row) (err error) {
	args := keyArgs(l.pk, []string{id})
	start := time.Now()
	defer func() {
		db.Logger.Trace(ctx, start, func() (string, int64) { return db.Dialector.Explain(q, args...), 1 }, err)
	}()
	rows, err := l.queryOne(ctx, db, q, args)
	if err != nil {
		return fmt.Errorf("rx: read %s rows: %w", l.name, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return fmt.Errorf("rx: read %s rows: %w", l.name, err)
	}
	fields := make([]*schema.Field, len(cols))
	values := make([]any, len(cols))
	for i, c := range cols {
		if f := l.schema.LookUpField(c); f != nil && f.Readable {
			fields[i] = f
		}
	}
	for rows.Next() {
		v := reflect.New(l.typ).Elem()
		for i, f := range fields {
			if f != nil {
				values[i] = f.NewValuePool.Get()
			} else {
				values[i] = new(any)
			}
		}
		if err := rows.Scan(values...); err != nil {
			return fmt.Errorf("rx: read %s rows: %w", l.name, err)
		}
		for i, f := range fields {
			if f == nil {
				continue
			}
			err := f.Set(ctx, v, values[i])
			f.NewValuePool.Put(values[i])
			if err != nil {
				return fmt.Errorf("rx: read %s rows: %w", l.name, err)
			}
		}
		r, rid, err := encodeRow(ctx, l, v)
		if err != nil {
			return err
		}
		out[rid] = r
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("rx: read %s rows: %w", l.name, err)
	}
	return nil
}

// rowReadHooks holds, by a database's Dialector (which its sessions
// share), the []rowReadHook a test installs to see, and change,
// readOneRow's queries, which GORM's callbacks do not see.
var rowReadHooks sync.Map

// rowReadHook is a test's view of a one-row read (export_test.go): it gets
// the query's context, table, SQL and arguments, and returns the SQL to run.
type rowReadHook = func(ctx context.Context, table, sql string, vars []any) string

// keyArgs converts canonical ids back to values of the key's Go type, so
// that drivers compare them with the right type.
func keyArgs(f *schema.Field, ids []string) []any {
	args := make([]any, len(ids))
	t := f.FieldType
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	kind := t.Kind()
	for i, id := range ids {
		args[i] = id
		switch kind {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			if n, err := strconv.ParseInt(id, 10, 64); err == nil {
				args[i] = n
			}
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			if n, err := strconv.ParseUint(id, 10, 64); err == nil {
				args[i] = n
			}
		}
	}
	return args
}

// encodeRow serializes one struct value of layer l.
func encodeRow(ctx context.Context, l *layer, v reflect.Value) (*row, string, error) {
	id, _ := idString(v.FieldByIndex(l.pk.StructField.Index))
	r := &row{fields: make(map[string]json.RawMessage, len(l.fields)+len(l.rels))}
	for _, f := range l.fields {
		fv, err := v.FieldByIndexErr(f.index)
		if err != nil {
			r.fields[f.name] = json.RawMessage("null")
			continue
		}
		b, err := f.enc(fv)
		if err != nil {
			return nil, "", fmt.Errorf("rx: encode %s.%s of %s %s: %w", l.name, f.goName, l.name, id, err)
		}
		r.fields[f.name] = b
	}
	if l.owner != nil {
		ov, _ := l.owner.ValueOf(ctx, v)
		r.owner, _ = idString(reflect.ValueOf(ov))
	}
	for _, rel := range l.rels {
		if rel.kind != relBelongsTo {
			continue
		}
		target, ok := fkID(ctx, rel, v)
		if r.belongs == nil {
			r.belongs = map[*relation]string{}
		}
		r.belongs[rel] = target
		if ok {
			r.fields[rel.name] = rel.to.idJSON(target)
		} else {
			r.fields[rel.name] = json.RawMessage("null")
		}
	}
	if len(l.parents) > 0 {
		r.fks = make([]string, len(l.parents))
		for i, p := range l.parents {
			r.fks[i], _ = fkID(ctx, p, v)
		}
	}
	return r, id, nil
}

// fkID returns the id that row v holds in relation r's foreign key; false
// when it holds none (null or zero).
func fkID(ctx context.Context, r *relation, v reflect.Value) (string, bool) {
	fv, _ := r.rel.References[0].ForeignKey.ValueOf(ctx, v)
	return idString(reflect.ValueOf(fv))
}

// readLists computes relation r's list for each parent id: ordered members,
// with owners when the target layer has per-user rows. Parents without
// members are present with an empty list.
func readLists(ctx context.Context, db *gorm.DB, r *relation, parents []string) (map[string][]member, error) {
	ctx = readContext(ctx, db)
	out := make(map[string][]member, len(parents))
	for _, p := range parents {
		out[p] = nil
	}
	to := r.to
	for start := 0; start < len(parents); start += chunkSize {
		chunk := parents[start:min(start+chunkSize, len(parents))]
		var (
			q       *gorm.DB
			parentC string
		)
		stmt := db.Statement
		pk := stmt.Quote(to.schema.Table + "." + to.pk.DBName)
		cols := []string{pk + " AS rx_id"}
		if to.owner != nil {
			cols = append(cols, stmt.Quote(to.schema.Table+"."+to.owner.DBName)+" AS rx_owner")
		}
		order := pk
		if r.order != "" {
			order = stmt.Quote(to.schema.Table) + "." + r.order + ", " + pk
		}
		switch r.kind {
		case relHasMany, relHasOne:
			ref := r.rel.References[0]
			parentC = stmt.Quote(to.schema.Table + "." + ref.ForeignKey.DBName)
			q = db.WithContext(ctx).Model(reflect.New(to.typ).Interface()).
				Where(parentC+" IN ?", keyArgs(r.from.pk, chunk))
		case relMany2Many:
			var own, assoc *schema.Reference
			for _, ref := range r.rel.References {
				if ref.OwnPrimaryKey {
					own = ref
				} else {
					assoc = ref
				}
			}
			jt := r.rel.JoinTable.Table
			parentC = stmt.Quote(jt + "." + own.ForeignKey.DBName)
			q = db.WithContext(ctx).Model(reflect.New(to.typ).Interface()).
				Joins("JOIN "+stmt.Quote(jt)+" ON "+stmt.Quote(jt+"."+assoc.ForeignKey.DBName)+" = "+stmt.Quote(to.schema.Table+"."+assoc.PrimaryKey.DBName)).
				Where(parentC+" IN ?", keyArgs(r.from.pk, chunk))
		default:
			return nil, fmt.Errorf("rx: relation %s.%s has no list", r.from.name, r.goName)
		}
		cols = append(cols, parentC+" AS rx_parent")
		limit := r.limit
		if r.kind == relHasOne {
			limit = 1
		}
		var rows []map[string]any
		if limit > 0 {
			// Per-user rows are ranked per owner, so that each owner's
			// first rows are kept (a has-one to per-user rows is one per
			// owner).
			partition := parentC
			if to.owner != nil {
				partition += ", " + stmt.Quote(to.schema.Table+"."+to.owner.DBName)
			}
			inner := q.Select(append(cols, "ROW_NUMBER() OVER (PARTITION BY "+partition+" ORDER BY "+order+") AS rx_rn"))
			err := db.WithContext(ctx).Table("(?) AS rx_ranked", inner).Where("rx_rn <= ?", limit).Order("rx_rn").Find(&rows).Error
			if err != nil {
				return nil, fmt.Errorf("rx: read %s.%s: %w", r.from.name, r.goName, err)
			}
		} else if err := q.Select(cols).Order(order).Find(&rows).Error; err != nil {
			return nil, fmt.Errorf("rx: read %s.%s: %w", r.from.name, r.goName, err)
		}
		for _, m := range rows {
			p, ok := idString(reflect.ValueOf(m["rx_parent"]))
			if !ok {
				continue
			}
			id, ok := idString(reflect.ValueOf(m["rx_id"]))
			if !ok {
				continue
			}
			owner, _ := idString(reflect.ValueOf(m["rx_owner"]))
			out[p] = append(out[p], member{id: id, owner: owner})
		}
	}
	return out, nil
}

// listJSON encodes the view of a relation list that owner may see: members
// without owner, plus owner's own. owner "" is the public view.
func listJSON(r *relation, ms []member, owner string) json.RawMessage {
	if r.kind == relHasOne {
		for _, m := range ms {
			if m.owner == "" || m.owner == owner {
				return r.to.idJSON(m.id)
			}
		}
		return json.RawMessage("null")
	}
	b := []byte{'['}
	n := 0
	for _, m := range ms {
		if m.owner != "" && m.owner != owner {
			continue
		}
		if n > 0 {
			b = append(b, ',')
		}
		b = append(b, r.to.idJSON(m.id)...)
		n++
	}
	return append(b, ']')
}
