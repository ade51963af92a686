package codegen

import (
	"fmt"
	"strings"
)

// The plain JavaScript form (Options.JS): the channel classes as an ES
// module, <name>.channels.js, with their declarations beside it,
// <name>.channels.d.ts, and the interfaces as <name>.interfaces.d.ts (types
// only: no JavaScript needs them). Editors and tsc read the declarations;
// node and browsers run the .js as it is.

// channelsJS writes the channel classes as JavaScript.
func (g *gen) channelsJS() []byte {
	var b strings.Builder
	b.WriteString(Header)
	b.WriteString("import { ContextChannel } from \"./" + RuntimeDir + "/index.js\";\n")
	list, _ := g.channelList()
	b.WriteString(g.models(""))
	for _, c := range list {
		fmt.Fprintf(&b, "\n/** %s */\nexport class %s extends ContextChannel {\n", c.doc, c.class)
		fmt.Fprintf(&b, "  static channel = %q;\n  channel = %q;\n  many = %v;\n  model = %s;\n", c.desc.Name, c.desc.Name, c.desc.Many, modelConst(c.desc.Name))
		param := "params"
		if c.optional {
			param += " = {}"
		}
		fmt.Fprintf(&b, "  constructor(conn, %s) {\n    super(conn, params);\n  }\n", param)
		for _, a := range c.actions {
			fmt.Fprintf(&b, "  /** Action %s (Go %s). */\n  %s(%s) {\n    return this.callAction(%q, [%s]);\n  }\n",
				a.name, a.goName, a.method, strings.Join(a.vals, ", "), a.name, strings.Join(a.vals, ", "))
		}
		b.WriteString("}\n")
	}
	return []byte(b.String())
}

// channelsDTS writes the declarations of channelsJS's classes.
func (g *gen) channelsDTS() []byte {
	var b strings.Builder
	b.WriteString(Header)
	b.WriteString("import { ContextChannel, type ChannelModel, type Connection, type ConnectionOptions } from \"./" + RuntimeDir + "/index.js\";\n")
	list, imports := g.channelList()
	g.importTypes(&b, imports)
	for _, c := range list {
		b.WriteString(c.writesDecl)
		fmt.Fprintf(&b, "\n/** %s */\nexport declare class %s extends ContextChannel<%s> {\n", c.doc, c.class, c.typeArgs)
		fmt.Fprintf(&b, "  static readonly channel = %q;\n  readonly channel = %q;\n  readonly many = %v;\n  readonly model: ChannelModel;\n", c.desc.Name, c.desc.Name, c.desc.Many)
		opt := ""
		if c.optional {
			opt = "?"
		}
		fmt.Fprintf(&b, "  constructor(conn: Connection | ConnectionOptions, params%s: %s);\n", opt, c.params)
		for _, a := range c.actions {
			fmt.Fprintf(&b, "  /** Action %s (Go %s). */\n  %s(%s): Promise<%s>;\n", a.name, a.goName, a.method, strings.Join(a.args, ", "), a.result)
		}
		b.WriteString("}\n")
	}
	return []byte(b.String())
}
