// Package quorum owns the quorum partition: a small area of the shared
// disk that both nodes read and write, sector by sector, to watch each
// other when every cable is cut and to leave each other messages. It
// defines the on-disk format and does its I/O; the heartbeat package's
// disk medium and the fencing code build on it.
//
// # Layout
//
// The partition is a row of sectors of one size S (the header's sector
// size: a power of two from 512 to 65536, a multiple of the device's
// logical block size; Init picks 4096 unless told otherwise, so a status
// slot holds a whole signed heartbeat). With N slots (2 for a pair):
//
//	sector      holds
//	0           header
//	1 + 2i      status slot of node i (written only by node i)
//	2 + 2i      mailbox of node i (written by the other nodes; read by node i)
//
//	1+2N+(2i+c)K  copy c (0 or 1) of node i's connection-list area, K
//	              sectors (the header's list sectors; none when 0)
//
// Sectors after the areas are not part of version 1 and are left alone. A
// node's slot index is its position in the header's node table, which Init
// fills in the order it is given (tandem gives the order of [[node]] in
// tandem.toml), so a dump names every slot without the configuration.
//
// # Sectors
//
// Integers are big endian. Every sector starts with the same prefix and
// ends with a CRC32C (Castagnoli) of every byte before it, so a torn
// write, a bit flip, a sector from another place of the layout, from an
// earlier initialisation or from another program is told apart from a
// good one:
//
//	offset  size  field
//	0       8     magic "TNDMQDSK"
//	8       2     format version (Version, 1)
//	10      1     kind: 1 header, 2 status slot, 3 mailbox, 4 list
//	11      1     index: the slot index (0 in the header)
//	12      4     reserved, zero
//	16      8     creation id: random, chosen by Init, the same in every
//	              sector of one initialisation; never zero
//	...           kind-specific body
//	S-4     4     CRC32C of bytes 0..S-5
//
// Header (sector 0):
//
//	24      4     sector size S
//	28      1     slot count N, 2..4
//	29      3     reserved, zero
//	32      4     interval in ms: how often each node writes its slot; not 0
//	36      4     watchdog timeout in ms (0: not recorded)
//	40      4     lease in ms (0: not recorded)
//	44      4     message wait in ms (0: not recorded)
//	48      1     cluster name length, 1..64
//	49      64    cluster name, zero padded
//	113     7     reserved, zero
//	120     76×N  node table, entry i at 120+76i:
//	                +0  1   node name length, 1..64
//	                +1  64  node name, zero padded
//	                +65 3   reserved, zero
//	                +68 4   status slot sector (1+2i)
//	                +72 4   mailbox sector (2+2i)
//	...           zero up to 424
//	424     4     first sector of the connection-list areas (1+2N), or 0
//	428     4     K, sectors in each copy of an area; 0: no areas
//	...           zero up to the CRC
//
// Disks initialised before the areas existed hold zeros at 424..431: they
// open as before and have no area.
//
// Status slot (sector 1+2i), written by node i only:
//
//	24      8     generation of the writer's run
//	32      8     counter, bumped at every write
//	40      1     role: 0 unknown, 1 standby, 2 starting, 3 active,
//	              4 stopping, 5 fencing
//	41      1     flags: 0x01 lease held; other bits zero
//	42      1     acknowledged message kind (0 none, 1 off, 2 reset)
//	43      1     acknowledged message's sender slot (0xff: none)
//	44      4     reserved, zero
//	48      8     acknowledged message's sequence
//	56      2     payload length p, 0..S-62
//	58      p     payload: the latest signed heartbeat message
//	...           zero up to the CRC
//
// Mailbox (sector 2+2i), a message for node i:
//
//	24      1     message kind: 0 none, 1 off, 2 reset
//	25      1     sender slot (0xff: none)
//	26      6     reserved, zero
//	32      8     sequence, bumped by the sender for every message
//	...           zero up to the CRC
//
// Connection-list area sector (sector p of copy c of node i's area),
// written by node i only:
//
//	24      1     copy c
//	25      3     reserved, zero
//	28      4     position p in the copy
//	32      8     write sequence, not 0, bumped at every write of the area
//	40      4     sectors n this write filled, 1..K
//	44      4     length of the list in bytes, filling exactly n sectors
//	48      8     the list's epoch, as its writer gives it
//	56      8     the list's version, as its writer gives it
//	64      ...   this sector's share of the list (S-68 bytes, the last
//	              sector's rest zero)
//
// An area holds the active node's list of client connections, so that a
// survivor that lost the LAN with its peer still knows whom to tickle.
// The writer alternates between the two copies, and every sector of a
// write carries its sequence, length and version: a reader takes the copy
// with the greater sequence whose n sectors all pass their CRC and agree,
// else the other. A write torn by a crash thus spoils only the copy being
// written, and the previous list stays whole in the other; a reader never
// sees a mix of two writes. (A commit sector would need a second copy of
// the data anyway, since a list is rewritten in place; two copies alone
// give the same guarantee with one write per sector.)
//
// A decoder checks, in order: length, magic, CRC, version, kind and index
// (ErrMisplaced), creation id against the header (ErrForeign), then each
// field and that every reserved and padding byte is zero (ErrField). Every
// rejection is a *SectorError naming the device, the sector, the field
// and its byte offset, e.g.
//
//	quorum: /dev/sdb1: sector 3 (slot 1): field crc32c at byte 4092: checksum mismatch: stored 0x5a1c0e2b, computed 0x0c33a8d1
//
// # Time
//
// No clock crosses the disk. A slot carries a counter, and a reader judges
// the writer by how long, on its own monotonic clock, the counter has not
// moved. The header's durations are settings both nodes agree on, not
// times.
//
// # I/O
//
// A block device is opened with O_DIRECT|O_DSYNC and read and written one
// whole sector at a time from an aligned buffer: each node must see what
// the other wrote, not its own page cache, and a write must be on the
// disk when it returns. The device's logical block size comes from
// BLKSSZGET. A regular file (tests, images) works too: where its
// filesystem refuses O_DIRECT it is read and written through the page
// cache with O_DSYNC, which both nodes then share. Each I/O runs on a
// goroutine of its own and is given up after a timeout: a hung device is
// an error (ErrHung), not a caller blocked forever, and while that I/O is
// outstanding later ones fail at once instead of piling up.
//
// # Use
//
// Init writes a fresh layout, refusing a device that holds a filesystem,
// a partition table, an LVM, MD or LUKS label, swap, an sbd header or
// another cluster's header unless forced. Open checks the header and gives
// a Disk for reading and writing slots and mailboxes. Dump shows
// everything, each sector with its own error.
package quorum
