package quorum

import (
	"bytes"
	"fmt"
)

// Signature is a well-known magic found on a device: something Init will
// not overwrite unless forced.
type Signature struct {
	// Name says what the magic belongs to, e.g. "ext2/3/4 filesystem".
	Name string
	// Offset is the byte offset of the magic on the device.
	Offset int64
	// Len is the magic's length in bytes.
	Len int
}

// String formats the signature as "ext2/3/4 filesystem (magic at byte 1080)".
func (s Signature) String() string {
	return fmt.Sprintf("%s (magic at byte %d)", s.Name, s.Offset)
}

// magicSpec is one entry of the table of well-known magics. An offset
// below zero counts from the end of the device, rounded as the format
// that puts its magic there rounds it (see tailOffset).
type magicSpec struct {
	name  string
	off   int64
	magic []byte
	tail  func(size int64) int64 // offset computed from the device size
}

var mdMagic = []byte{0xfc, 0x4e, 0x2b, 0xa9} // 0xa92b4efc little endian

// magics are the signatures of filesystems, partition tables and volume
// managers at their documented offsets (those blkid and wipefs look at).
var magics = []magicSpec{
	{name: "ext2/3/4 filesystem", off: 1080, magic: []byte{0x53, 0xef}},
	{name: "XFS filesystem", off: 0, magic: []byte("XFSB")},
	{name: "btrfs filesystem", off: 65600, magic: []byte("_BHRfS_M")},
	{name: "GPT partition table", off: 512, magic: []byte("EFI PART")},
	{name: "GPT partition table (4 KiB sectors)", off: 4096, magic: []byte("EFI PART")},
	{name: "DOS/MBR partition table or boot sector", off: 510, magic: []byte{0x55, 0xaa}},
	{name: "LVM2 physical volume", off: 0, magic: []byte("LABELONE")},
	{name: "LVM2 physical volume", off: 512, magic: []byte("LABELONE")},
	{name: "LVM2 physical volume", off: 1024, magic: []byte("LABELONE")},
	{name: "LVM2 physical volume", off: 1536, magic: []byte("LABELONE")},
	{name: "Linux MD RAID member (superblock 1.1)", off: 0, magic: mdMagic},
	{name: "Linux MD RAID member (superblock 1.2)", off: 4096, magic: mdMagic},
	{name: "Linux MD RAID member (superblock 0.90)", magic: mdMagic, tail: func(size int64) int64 {
		return size&^(64<<10-1) - 64<<10
	}},
	{name: "Linux MD RAID member (superblock 1.0)", magic: mdMagic, tail: func(size int64) int64 {
		return (size - 8192) &^ 4095
	}},
	{name: "LUKS encrypted volume", off: 0, magic: []byte("LUKS\xba\xbe")},
	{name: "Linux swap", off: 4086, magic: []byte("SWAPSPACE2")},
	{name: "Linux swap", off: 4086, magic: []byte("SWAP-SPACE")},
	{name: "ISO 9660 filesystem", off: 32769, magic: []byte("CD001")},
	{name: "NTFS filesystem", off: 3, magic: []byte("NTFS    ")},
	{name: "FAT32 filesystem", off: 82, magic: []byte("FAT32   ")},
	{name: "sbd (STONITH block device) header", off: 0, magic: []byte("SBD_SECT")},
}

// probeLen is how much of the start of a device the probe reads: past the
// btrfs superblock magic, in whole 4 KiB blocks.
const probeLen = 68 << 10

// headLen returns how many leading bytes of a device of the given size a
// probe reads.
func headLen(size int64) int64 { return min(size, probeLen) }

// findSignatures looks for the table's magics in head (the first bytes of
// the device) and tail (the last bytes, starting at tailStart).
func findSignatures(head []byte, tail []byte, tailStart, size int64) []Signature {
	var out []Signature
	for _, m := range magics {
		off := m.off
		if m.tail != nil {
			off = m.tail(size)
			if off < 0 || off+int64(len(m.magic)) > size {
				continue
			}
			if off >= tailStart && off-tailStart+int64(len(m.magic)) <= int64(len(tail)) {
				if bytes.Equal(tail[off-tailStart:off-tailStart+int64(len(m.magic))], m.magic) {
					out = append(out, Signature{Name: m.name, Offset: off, Len: len(m.magic)})
				}
			}
			continue
		}
		if off+int64(len(m.magic)) <= int64(len(head)) && bytes.Equal(head[off:off+int64(len(m.magic))], m.magic) {
			out = append(out, Signature{Name: m.name, Offset: off, Len: len(m.magic)})
		}
	}
	return out
}
