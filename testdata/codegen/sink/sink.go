// Package sink is a channel package that exercises every Go → TypeScript
// mapping of makefrontend. It lives in its own module, as a user's app does.
package sink

import (
	"context"
	"encoding/json"
	"time"

	"github.com/rxgorm/rxgorm/rx"
	"gorm.io/gorm"
)

// Role is a string enum.
type Role string

// The roles.
const (
	RoleOwner  Role = "owner"
	RoleAdmin  Role = "admin"
	RoleMember Role = "member"
)

// Level is a numeric enum.
type Level int

// The levels.
const (
	LevelLow  Level = 1
	LevelHigh Level = 3
)

// Audit is embedded: its fields are promoted, as encoding/json does.
type Audit struct {
	CreatedAt time.Time  `json:"createdAt"`
	UpdatedAt *time.Time `json:"updatedAt"`
}

// Shop is the anchor.
type Shop struct {
	ID      uint64          `gorm:"primaryKey" json:"id,string"` // wide key: a string on the wire
	Name    string          `json:"name"`
	Audit                   // promoted
	Owner   *Person         `json:"owner"` // belongs-to via OwnerID
	OwnerID *uint           `json:"ownerId"`
	Items   []Item          `json:"items" rx:"order=position"`
	Staff   []Person        `gorm:"many2many:shop_staff" json:"staff"`
	Sign    *Sign           `json:"sign"` // has-one
	Notes   []Note          `json:"notes"`
	Secret  string          `json:"-"`
	Renamed string          `json:"display_name"`
	Flags   []string        `gorm:"serializer:json" json:"flags"`
	Meta    map[string]int  `gorm:"serializer:json" json:"meta,omitempty"`
	Blob    []byte          `json:"blob"`
	Ratio   float64         `json:"ratio"`
	Small   int8            `json:"small"`
	Open    bool            `json:"open"`
	Level   Level           `json:"level"`
	Extra   json.RawMessage `gorm:"serializer:json" json:"extra"`
}

// Person is staff and owner.
type Person struct {
	ID      uint     `gorm:"primaryKey" json:"id"`
	Name    string   `json:"name"`
	Role    Role     `json:"role"`
	Nick    *string  `json:"nick"`
	BossID  *uint    `json:"bossId"`
	Reports []Person `gorm:"foreignKey:BossID" json:"reports" rx:"recursive"`
	Friends []Person `gorm:"many2many:person_friends" json:"friends" rx:"ids"`
}

// Item is sold by a shop.
type Item struct {
	ID       uint                `gorm:"primaryKey" json:"id"`
	ShopID   uint64              `json:"shopId,string"`
	Position int                 `json:"position"`
	Price    float32             `json:"price"`
	Tags     map[string][]string `gorm:"serializer:json" json:"tags"`
}

// Sign is the shop's sign.
type Sign struct {
	ID     uint   `gorm:"primaryKey" json:"id"`
	ShopID uint64 `json:"shopId,string"`
	Text   string `json:"text"`
}

// Note is a per-user row.
type Note struct {
	ID     uint   `gorm:"primaryKey" json:"id"`
	ShopID uint64 `json:"shopId,string"`
	UserID uint   `json:"userId" rx:"owner"`
	Body   string `json:"body"`
}

// ShopParams select a shop.
type ShopParams struct {
	ShopID uint64 `json:"shopId,string" rx:"anchor"`
	Filter *struct {
		Role  Role `json:"role,omitempty"`
		Limit int  `json:"limit,omitzero"`
	} `json:"filter,omitempty"`
}

// ShopRuntime is pushed to each subscriber.
type ShopRuntime struct {
	Viewers []string           `json:"viewers"`
	Busy    bool               `json:"busy"`
	Since   time.Time          `json:"since"`
	Scores  map[string]float64 `json:"scores,omitempty"`
}

// Receipt is an action result.
type Receipt struct {
	Total   float64   `json:"total"`
	At      time.Time `json:"at"`
	Lines   []Line    `json:"lines"`
	Comment *string   `json:"comment,omitempty"`
}

// Line is part of a Receipt.
type Line struct {
	ItemID uint `json:"itemId"`
	Qty    int  `json:"qty"`
}

// ShopChannel is one shop.
type ShopChannel struct {
	rx.Channel[Shop, ShopParams]
	rx.Runtime[ShopRuntime]
}

// Authorize lets everyone in.
func (ShopChannel) Authorize(context.Context, rx.User, ShopParams) error { return nil }

// Actions lists the actions.
func (*ShopChannel) Actions() []string {
	return []string{"Buy", "Rename", "Ping", "Promote", "Stats", "Item", "Create"}
}

// Buy buys items.
func (*ShopChannel) Buy(ctx context.Context, lines []Line, at time.Time, note *string) (*Receipt, error) {
	return &Receipt{}, nil
}

// Rename renames the shop.
func (*ShopChannel) Rename(ctx context.Context, name string) error { return nil }

// TrackPresence: clients see who else is in the shop.
func (*ShopChannel) TrackPresence() rx.PresenceOptions { return rx.PresenceOptions{} }

// Writable lets clients edit items, their notes and the sign.
func (c *ShopChannel) Writable() []rx.Writable {
	return []rx.Writable{
		rx.Writes[Item]{Fields: []string{"price", "Position", "tags"}, Save: true, Create: []string{"Shop.items"}, Delete: true, Allow: c.allowItem},
		rx.Writes[Note]{Fields: []string{"body"}, Save: true, Create: []string{"Shop.notes"}, Allow: c.allowNote},
		rx.Writes[Sign]{Fields: []string{"text"}, Create: []string{"Shop.sign"}, Delete: true, Allow: c.allowSign},
	}
}

func (*ShopChannel) allowItem(context.Context, rx.Write[Item]) error { return nil }
func (*ShopChannel) allowNote(context.Context, rx.Write[Note]) error { return nil }
func (*ShopChannel) allowSign(context.Context, rx.Write[Sign]) error { return nil }

// Create is named like a ContextChannel method: its TypeScript method is
// create_.
func (*ShopChannel) Create(ctx context.Context, name string) error { return nil }

// Ping takes nothing and returns nothing.
func (*ShopChannel) Ping(ctx context.Context) error { return nil }

// Promote changes a role.
func (*ShopChannel) Promote(ctx context.Context, person uint, role Role, level Level) (Role, error) {
	return role, nil
}

// Stats returns a map.
func (*ShopChannel) Stats(ctx context.Context, days []int) (map[string]float64, error) {
	return nil, nil
}

// Item returns a model as Go encodes it.
func (*ShopChannel) Item(ctx context.Context, id uint) (Item, error) { return Item{}, nil }

// Shops lists open shops.
type Shops struct{ rx.List[Shop, rx.NoParams] }

// Authorize lets everyone in.
func (Shops) Authorize(context.Context, rx.User, rx.NoParams) error { return nil }

// Anchors are the open shops.
func (Shops) Anchors(ctx context.Context, db *gorm.DB, u rx.User, p rx.NoParams) *gorm.DB {
	return db.Where("open = ?", true)
}

// Channels returns the package's channels for makefrontend.
func Channels() []any { return []any{&ShopChannel{}, &Shops{}} }
