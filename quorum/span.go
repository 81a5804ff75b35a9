package quorum

// ReadSlotAndMailbox reads slot i's status sector and slot j's mailbox
// with one read of the sectors from the first to the last of the two: a
// node polls its peer's slot and its own mailbox in one I/O (two when
// sectors are so large that the span exceeds maxIO). Each sector
// is decoded and checked on its own; a mailbox that fails to decode does
// not spoil a good slot, and the other way round (slotErr, mailboxErr).
// err is a failed read, in which case neither is decoded.
func (d *Disk) ReadSlotAndMailbox(i, j int) (s *Slot, m *Mailbox, slotErr, mailboxErr, err error) {
	if err := d.hdr.checkSlot(i); err != nil {
		return nil, nil, nil, nil, err
	}
	if err := d.hdr.checkSlot(j); err != nil {
		return nil, nil, nil, nil, err
	}
	ss, ms := SlotSector(i), MailboxSector(j)
	first, last := min(ss, ms), max(ss, ms)
	size := int64(d.hdr.SectorSize)
	var slotSec, mailboxSec []byte
	if (last-first+1)*size <= maxIO {
		b, err := d.dev.read(first*size, int(last-first+1)*d.hdr.SectorSize)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		sector := func(n int64) []byte { return b[(n-first)*size : (n-first+1)*size] }
		slotSec, mailboxSec = sector(ss), sector(ms)
	} else {
		// Large sectors: the span would not fit one I/O, so two reads.
		if slotSec, err = d.readSector(ss); err != nil {
			return nil, nil, nil, nil, err
		}
		if mailboxSec, err = d.readSector(ms); err != nil {
			return nil, nil, nil, nil, err
		}
	}
	s, slotErr = d.hdr.DecodeSlot(i, slotSec)
	m, mailboxErr = d.hdr.DecodeMailbox(j, mailboxSec)
	return s, m, withDevice(slotErr, d.dev.path), withDevice(mailboxErr, d.dev.path), nil
}

// MessageOf returns mb, slot i's mailbox, as a Message for that node.
func (d *Disk) MessageOf(i int, mb *Mailbox) Message {
	return Message{Kind: mb.Kind, From: d.hdr.name(mb.From), To: d.hdr.Nodes[i], Sequence: mb.Sequence}
}
