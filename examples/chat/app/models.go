package app

import "time"

// The data model of the Nova 210 SE chat, as GORM models. The json tags
// name the fields clients see; `json:"-"` keeps a field on the server; the
// rx tags shape the channels' state (see package rx).
//
// Two rows exist per user: User, the public profile that every other row
// points at (friends, members, senders, readers), and Home, the root of
// what only that user sees. They are separate because a model has one
// shape in every channel: if User itself listed friend groups and chat
// relations, every user reached as a friend, a member or a sender would
// drag their private trees into other users' streams.
//
// Likewise a user's entry in the chat list (UserChatRelation) carries the
// few chat fields the list shows (kind, name, peer, last message) instead
// of pointing at Chat: a Chat brings its members and latest messages, and
// a chat list does not need fifty messages per chat.

// Chat kinds.
const (
	KindPrivate = "private" // two friends; created when an invitation is accepted
	KindGroup   = "group"   // owned, with admins; created by a user
)

// Chat invitation states (see invitations.go for the flow).
const (
	AwaitingApproval = "awaiting_approval" // an owner or admin must approve first
	AwaitingInvitee  = "awaiting_invitee"  // the invitee accepts or rejects
)

// DeletedUsername is the username of the placeholder user that the
// messages of deleted accounts are re-assigned to. No one can log in as it.
const DeletedUsername = "#DELETED"

// User is a user's public profile.
type User struct {
	ID          uint   `gorm:"primaryKey" json:"id"`
	Username    string `gorm:"size:32;uniqueIndex;not null" json:"username"`
	DisplayName string `gorm:"size:64;not null" json:"displayName"`
	// Avatar is the URL of the generated avatar image (see avatar.go).
	Avatar       string    `gorm:"size:128;not null" json:"avatar"`
	PasswordHash string    `gorm:"size:80;not null" json:"-"`
	CreatedAt    time.Time `json:"createdAt"`

	// token is the session token that authenticated this user, on the
	// values App.Authenticate returns; never stored nor sent.
	token string
}

// Home is the root of one user's own state and the anchor of HomeChannel.
// Its id is the user's id.
type Home struct {
	ID     uint `gorm:"primaryKey;autoIncrement:false" json:"id"`
	UserID uint `gorm:"uniqueIndex;not null" json:"userId"`
	// User is the user's own profile.
	User User `json:"user"`
	// FriendGroups hold the friends, each in one group.
	FriendGroups []FriendGroup `gorm:"foreignKey:UserID" json:"friendGroups"`
	// FriendInvitationsIn are invitations received, FriendInvitationsOut
	// invitations sent and not answered yet.
	FriendInvitationsIn  []FriendInvitation `gorm:"foreignKey:ReceiverID" json:"friendInvitationsIn"`
	FriendInvitationsOut []FriendInvitation `gorm:"foreignKey:SenderID" json:"friendInvitationsOut"`
	// Chats is the chat list, most recently active first, with the unread
	// counts.
	Chats []UserChatRelation `gorm:"foreignKey:UserID" json:"chats" rx:"order=last_message_at desc"`
	// ChatInvitations are the chat invitations waiting for this user: to
	// approve (as an owner or admin of the chat) or to accept or reject (as
	// the invitee).
	ChatInvitations []ChatInvitation `gorm:"many2many:chat_invitation_deciders;joinForeignKey:UserID;joinReferences:ChatInvitationID" json:"chatInvitations"`
	// SentChatInvitations are the pending chat invitations this user made.
	SentChatInvitations []ChatInvitation `gorm:"foreignKey:InviterID" json:"sentChatInvitations"`
}

// FriendGroup is a named group of friends. Every user has one default
// group, which cannot be deleted; new friends land there.
type FriendGroup struct {
	ID        uint         `gorm:"primaryKey" json:"id"`
	UserID    uint         `gorm:"index;not null" json:"userId"`
	Name      string       `gorm:"size:32;not null" json:"name"`
	IsDefault bool         `gorm:"not null" json:"isDefault"`
	Friends   []Friendship `gorm:"foreignKey:GroupID" json:"friends"`
	CreatedAt time.Time    `json:"createdAt"`
}

// Friendship is one side of a friendship: UserID's friend FriendID, in one
// of UserID's groups. A friendship is two rows, one per side.
type Friendship struct {
	ID       uint `gorm:"primaryKey" json:"id"`
	UserID   uint `gorm:"uniqueIndex:idx_friendship;not null" json:"userId"`
	FriendID uint `gorm:"uniqueIndex:idx_friendship;index;not null" json:"friendId"`
	Friend   User `json:"friend"`
	GroupID  uint `gorm:"index;not null" json:"groupId"`
	// ChatID is the friends' private chat.
	ChatID    uint      `gorm:"not null" json:"chatId"`
	CreatedAt time.Time `json:"createdAt"`
}

// FriendInvitation asks Receiver to become Sender's friend.
type FriendInvitation struct {
	ID         uint      `gorm:"primaryKey" json:"id"`
	SenderID   uint      `gorm:"index;not null" json:"senderId"`
	Sender     User      `json:"sender"`
	ReceiverID uint      `gorm:"index;not null" json:"receiverId"`
	Receiver   User      `json:"receiver"`
	Message    string    `gorm:"size:200;not null" json:"message"`
	CreatedAt  time.Time `json:"createdAt"`
}

// Chat is a private or group chat and the anchor of ChatChannel.
type Chat struct {
	ID   uint   `gorm:"primaryKey" json:"id"`
	Kind string `gorm:"size:8;not null" json:"kind"`
	// Name is the name of a group chat; private chats show the peer.
	Name    string `gorm:"size:64;not null" json:"name"`
	OwnerID *uint  `gorm:"index" json:"ownerId"`
	Owner   *User  `json:"owner"`
	// Admins are the group's admins besides the owner.
	Admins  []User `gorm:"many2many:chat_admins" json:"admins"`
	Members []User `gorm:"many2many:chat_members" json:"members"`
	// Relations holds the subscriber's own relation to the chat (unread
	// count, last read message): per-user rows, so each member sees only
	// theirs.
	Relations []UserChatRelation `gorm:"foreignKey:ChatID" json:"relations"`
	// Invitations are the chat's pending invitations.
	Invitations []ChatInvitation `gorm:"foreignKey:ChatID" json:"invitations"`
	// Messages are the latest 50, newest first; older ones are paged in
	// with ChatChannel.History.
	Messages []Message `gorm:"foreignKey:ChatID" json:"messages" rx:"order=id desc,limit=50"`
	// Events are the latest 50 system events (created, joined, left,
	// renamed, owner and admin changes), newest first: rows, so a reload
	// or a reconnect shows what happened meanwhile.
	Events    []ChatEvent `gorm:"foreignKey:ChatID" json:"events" rx:"order=id desc,limit=50"`
	CreatedAt time.Time   `json:"createdAt"`
}

// UserChatRelation is a member's own view of a chat: an entry of the chat
// list with the unread count and the last message read. It is a per-user
// row (rx:"owner"): it reaches no one but its user.
type UserChatRelation struct {
	ID     uint   `gorm:"primaryKey" json:"id"`
	UserID uint   `gorm:"uniqueIndex:idx_user_chat;not null" json:"userId" rx:"owner"`
	ChatID uint   `gorm:"uniqueIndex:idx_user_chat;index;not null" json:"chatId"`
	Kind   string `gorm:"size:8;not null" json:"kind"`
	// Name is the group chat's name (kept in step by renames).
	Name string `gorm:"size:64;not null" json:"name"`
	// Peer is the other member of a private chat.
	PeerID            *uint     `gorm:"index" json:"peerId"`
	Peer              *User     `json:"peer"`
	UnreadCount       int       `gorm:"not null" json:"unreadCount"`
	LastReadMessageID uint      `gorm:"not null" json:"lastReadMessageId"`
	LastMessage       string    `gorm:"size:120;not null" json:"lastMessage"`
	LastMessageAt     time.Time `gorm:"index" json:"lastMessageAt"`
	CreatedAt         time.Time `json:"createdAt"`
}

// ChatInvitation invites Invitee into a group chat. Deciders are the users
// who must act on it now: the chat's owner and admins while it awaits
// approval, then the invitee.
type ChatInvitation struct {
	ID     uint `gorm:"primaryKey" json:"id"`
	ChatID uint `gorm:"index;not null" json:"chatId"`
	// ChatName is the chat's name (kept in step by renames).
	ChatName     string    `gorm:"size:64;not null" json:"chatName"`
	InviterID    uint      `gorm:"index;not null" json:"inviterId"`
	Inviter      User      `json:"inviter"`
	InviteeID    uint      `gorm:"index;not null" json:"inviteeId"`
	Invitee      User      `json:"invitee"`
	Status       string    `gorm:"size:20;not null" json:"status"`
	ApprovedByID *uint     `gorm:"index" json:"approvedById"`
	ApprovedBy   *User     `json:"approvedBy"`
	Deciders     []User    `gorm:"many2many:chat_invitation_deciders" json:"deciders"`
	CreatedAt    time.Time `json:"createdAt"`
}

// Message is a chat message with its read receipts.
type Message struct {
	ID       uint   `gorm:"primaryKey" json:"id"`
	ChatID   uint   `gorm:"index;not null" json:"chatId"`
	SenderID uint   `gorm:"index;uniqueIndex:idx_message_client,priority:1;not null" json:"senderId"`
	Sender   User   `json:"sender"`
	Text     string `gorm:"size:4000;not null" json:"text"`
	// Readers are the members who read the message (its sender excluded).
	Readers   []User    `gorm:"many2many:message_reads" json:"readers"`
	CreatedAt time.Time `json:"createdAt"`
	// EditedAt is when the sender last edited the text (a client write),
	// null if never.
	EditedAt *time.Time `json:"editedAt"`
	// ClientID is the sender's idempotency key (PostMessage), null for
	// messages sent without one: a message sent again with the same key
	// is stored once.
	ClientID *string `gorm:"size:40;uniqueIndex:idx_message_client,priority:2" json:"clientId"`
}

// ChatEvent is a system event of a chat, shown among its messages: who
// created the group, joined, left, renamed it, became its owner or an
// admin. Kind is the notice kind (chat.created, chat.joined, chat.left,
// chat.renamed, chat.owner, chat.admin, chat.unadmin); Text says it in
// words. Events go with their chat.
type ChatEvent struct {
	ID        uint      `gorm:"primaryKey" json:"id"`
	ChatID    uint      `gorm:"index;not null" json:"chatId"`
	Kind      string    `gorm:"size:20;not null" json:"kind"`
	Text      string    `gorm:"size:300;not null" json:"text"`
	CreatedAt time.Time `json:"createdAt"`
}

// Join-table rows, written directly where whole sets change at once
// (GORM's association API covers one owner at a time). Writes through
// them are captured like any other: rxgorm knows the join tables of the
// many2many relations above.

// ChatMember is a row of Chat.Members.
type ChatMember struct {
	ChatID uint `gorm:"primaryKey"`
	UserID uint `gorm:"primaryKey"`
}

// TableName is the join table of Chat.Members.
func (ChatMember) TableName() string { return "chat_members" }

// ChatAdmin is a row of Chat.Admins.
type ChatAdmin struct {
	ChatID uint `gorm:"primaryKey"`
	UserID uint `gorm:"primaryKey"`
}

// TableName is the join table of Chat.Admins.
func (ChatAdmin) TableName() string { return "chat_admins" }

// MessageRead is a row of Message.Readers.
type MessageRead struct {
	MessageID uint `gorm:"primaryKey"`
	UserID    uint `gorm:"primaryKey"`
}

// TableName is the join table of Message.Readers.
func (MessageRead) TableName() string { return "message_reads" }

// ChatInvitationDecider is a row of ChatInvitation.Deciders (and of
// Home.ChatInvitations, the same table seen from the user's side).
type ChatInvitationDecider struct {
	ChatInvitationID uint `gorm:"primaryKey"`
	UserID           uint `gorm:"primaryKey"`
}

// TableName is the join table of ChatInvitation.Deciders.
func (ChatInvitationDecider) TableName() string { return "chat_invitation_deciders" }

// Models lists the models to migrate, in dependency order. The join tables
// are created by their many2many relations.
func Models() []any {
	return []any{&User{}, &Home{}, &FriendGroup{}, &Friendship{}, &FriendInvitation{}, &Chat{}, &UserChatRelation{}, &ChatInvitation{}, &Message{}, &ChatEvent{}}
}
