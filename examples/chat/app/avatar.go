package app

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"image"
	"image/color"
	"image/png"
	"math"
	"net/url"
	"regexp"
)

// Avatars are identicons made by code: a 5×5 grid, mirrored left to right,
// whose cells and colour come from the SHA-256 of a seed. A new account
// gets a random seed (the seed's generate_avatar.py drew a random avatar
// at registration), and the user may pick another (SetAvatar); the seed
// is in the avatar's URL, so the image needs no storage. Without a seed
// the username is the seed (the #DELETED user). The same seed always
// gives the same image.

// AvatarSize is the width and height of an avatar in pixels.
const AvatarSize = 140

// AvatarURL is the URL the REST server serves username's avatar at.
func AvatarURL(username string) string {
	return "/api/avatar/" + url.PathEscape(username) + ".png"
}

// avatarSeedRE is what an avatar seed looks like: 16 hex digits.
var avatarSeedRE = regexp.MustCompile(`^[0-9a-f]{16}$`)

// ValidAvatarSeed says whether seed is an avatar seed: 16 lower-case hex
// digits.
func ValidAvatarSeed(seed string) bool { return avatarSeedRE.MatchString(seed) }

// RandomAvatarSeed returns a new random avatar seed.
func RandomAvatarSeed() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// AvatarSeedURL is the URL of the avatar drawn from seed, served under
// username's name.
func AvatarSeedURL(username, seed string) string {
	return AvatarURL(username) + "?seed=" + seed
}

// Avatar returns the PNG avatar drawn from seed (a username or an avatar
// seed).
func Avatar(seed string) []byte {
	sum := sha256.Sum256([]byte(seed))
	fg := hsl(float64(sum[0])/255*360, 0.45+float64(sum[1])/255*0.2, 0.45+float64(sum[2])/255*0.15)
	bg := color.RGBA{0xf2, 0xf2, 0xf2, 0xff}
	const cells, margin = 5, 20
	cell := (AvatarSize - 2*margin) / cells
	img := image.NewPaletted(image.Rect(0, 0, AvatarSize, AvatarSize), color.Palette{bg, fg})
	for y := 0; y < cells; y++ {
		for x := 0; x < (cells+1)/2; x++ {
			// One bit per cell of the left half and the middle column.
			bit := y*3 + x
			if sum[3+bit/8]>>(bit%8)&1 == 0 {
				continue
			}
			for _, cx := range []int{x, cells - 1 - x} {
				for py := 0; py < cell; py++ {
					for px := 0; px < cell; px++ {
						img.SetColorIndex(margin+cx*cell+px, margin+y*cell+py, 1)
					}
				}
			}
		}
	}
	var buf bytes.Buffer
	_ = png.Encode(&buf, img) // cannot fail writing to memory
	return buf.Bytes()
}

// hsl converts a hue (degrees), saturation and lightness to RGB.
func hsl(h, s, l float64) color.RGBA {
	c := (1 - math.Abs(2*l-1)) * s
	hp := h / 60
	x := c * (1 - math.Abs(math.Mod(hp, 2)-1))
	var r, g, b float64
	switch {
	case hp < 1:
		r, g = c, x
	case hp < 2:
		r, g = x, c
	case hp < 3:
		g, b = c, x
	case hp < 4:
		g, b = x, c
	case hp < 5:
		r, b = x, c
	default:
		r, b = c, x
	}
	m := l - c/2
	return color.RGBA{uint8((r + m) * 255), uint8((g + m) * 255), uint8((b + m) * 255), 0xff}
}
