package codegen

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/rxgorm/rxgorm/rx"
)

// Client writes in the generated channels: a type per channel naming what
// save, create and delete accept (the runtime's Writes), and the writes
// part of the channel's model, which the runtime uses to apply a write to
// the local state before the server confirms it.

func writesType(channel string) string { return exportName(channel) + "Writes" }

// writesDecl declares the channel's Writes type.
func (g *gen) writesDecl(c rx.ChannelDesc) string {
	var save, create, del []string
	for _, w := range c.Writes {
		l := g.layers[w.Layer]
		key := g.keyType(l)
		fields := g.writableFields(l, w.Fields)
		if w.Save {
			save = append(save, fmt.Sprintf("    %s: { key: %s; fields: %s };\n", prop(w.Layer), key, fields))
		}
		if w.Delete {
			del = append(del, fmt.Sprintf("    %s: { key: %s };\n", prop(w.Layer), key))
		}
		for _, cr := range w.Create {
			create = append(create, fmt.Sprintf("    %s: { parent: %s; key: %s; fields: %s };\n", prop(cr.Relation), g.keyType(g.layers[cr.Parent]), key, fields))
		}
	}
	group := func(name string, entries []string) string {
		if len(entries) == 0 {
			return "  " + name + ": Record<never, never>;\n"
		}
		return "  " + name + ": {\n" + strings.Join(entries, "") + "  };\n"
	}
	return fmt.Sprintf("\n/** The client writes %s allows: the types and fields of save, create and delete. */\nexport type %s = {\n%s%s%s};\n",
		c.Name, writesType(c.Name), group("save", save), group("create", create), group("delete", del))
}

// keyType is the TypeScript type of a layer's key.
func (g *gen) keyType(l *rx.LayerDesc) string {
	if l != nil {
		for _, f := range l.Fields {
			if f.Key {
				return g.ts(&f.Type)
			}
		}
	}
	return "string | number"
}

// writableFields is the object type of a write's fields, each optional
// (a field left out keeps its value, or the zero value on create).
func (g *gen) writableFields(l *rx.LayerDesc, names []string) string {
	if len(names) == 0 {
		return "Record<string, never>"
	}
	var parts []string
	for _, n := range names {
		t := "unknown"
		for _, f := range l.Fields {
			if f.Name == n {
				t = g.fieldType(&f)
			}
		}
		parts = append(parts, fmt.Sprintf("%s?: %s", prop(n), t))
	}
	return "{ " + strings.Join(parts, "; ") + " }"
}

// writesModel writes the writes part of a channel model.
func writesModel(c rx.ChannelDesc) string {
	if len(c.Writes) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("  writes: {\n")
	for _, w := range c.Writes {
		fmt.Fprintf(&b, "    %s: {\n      key: %q,\n      idType: %q,\n", prop(w.Layer), w.Key, w.IDType)
		if w.Owner != "" {
			fmt.Fprintf(&b, "      owner: %q,\n", w.Owner)
		}
		var tmpl []string
		for _, k := range slices.Sorted(maps.Keys(w.Template)) {
			tmpl = append(tmpl, fmt.Sprintf("%s: %s", prop(k), w.Template[k]))
		}
		fmt.Fprintf(&b, "      template: { %s },\n", strings.Join(tmpl, ", "))
		if len(w.Create) > 0 {
			b.WriteString("      create: {\n")
			for _, cr := range w.Create {
				fmt.Fprintf(&b, "        %s: { parent: %q, field: %q, many: %v", prop(cr.Relation), cr.Parent, cr.Field, cr.Many)
				if cr.ForeignKey != "" {
					fmt.Fprintf(&b, ", foreignKey: %q", cr.ForeignKey)
				}
				if cr.First {
					b.WriteString(", first: true")
				}
				b.WriteString(" },\n")
			}
			b.WriteString("      },\n")
		}
		b.WriteString("    },\n")
	}
	b.WriteString("  },\n")
	return b.String()
}
