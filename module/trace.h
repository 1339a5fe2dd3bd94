/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Tracepoints, one per data path, so that tracefs shows what each call
 * really did: bytes moved, pages handed over by reference, bytes copied.
 *
 *   echo 1 > /sys/kernel/tracing/events/zcdev/enable
 *   cat /sys/kernel/tracing/trace_pipe
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM zcdev

#if !defined(_ZCDEV_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define _ZCDEV_TRACE_H

#include <linux/tracepoint.h>

/*
 * Every event ends with the ring it happened on (0 is /dev/zcdev, N is
 * /dev/zcdevN): last, so the fields that were there before it keep their
 * offsets and their order for existing readers.
 */
DECLARE_EVENT_CLASS(zcdev_xfer,
		    TP_PROTO(u64 bytes, u32 pages_moved, u64 bytes_copied,
			     u32 ring),
		    TP_ARGS(bytes, pages_moved, bytes_copied, ring),
		    TP_STRUCT__entry(__field(u64, bytes)
				     __field(u32, pages_moved)
				     __field(u64, bytes_copied)
				     __field(u32, ring)),
		    TP_fast_assign(__entry->bytes = bytes;
				   __entry->pages_moved = pages_moved;
				   __entry->bytes_copied = bytes_copied;
				   __entry->ring = ring;),
		    TP_printk("bytes=%llu pages_moved=%u bytes_copied=%llu ring=%u",
			      __entry->bytes, __entry->pages_moved,
			      __entry->bytes_copied, __entry->ring));

#define ZCDEV_XFER_EVENT(name)						\
	DEFINE_EVENT(zcdev_xfer, zcdev_xfer_##name,			\
		     TP_PROTO(u64 bytes, u32 pages_moved, u64 bytes_copied, \
			      u32 ring),				\
		     TP_ARGS(bytes, pages_moved, bytes_copied, ring))

ZCDEV_XFER_EVENT(write);
ZCDEV_XFER_EVENT(read);
ZCDEV_XFER_EVENT(produce);
ZCDEV_XFER_EVENT(consume);
ZCDEV_XFER_EVENT(splice_out);
ZCDEV_XFER_EVENT(splice_in);

/* A slot got a fresh page because a pipe still held the old one. */
TRACE_EVENT(zcdev_page_swap,
	    TP_PROTO(unsigned int slot, int other_refs, u32 ring),
	    TP_ARGS(slot, other_refs, ring),
	    TP_STRUCT__entry(__field(unsigned int, slot)
			     __field(int, other_refs)
			     __field(u32, ring)),
	    TP_fast_assign(__entry->slot = slot;
			   __entry->other_refs = other_refs;
			   __entry->ring = ring;),
	    TP_printk("slot=%u other_refs=%d ring=%u", __entry->slot,
		      __entry->other_refs, __entry->ring));

/*
 * Tail passed a page held beyond the ring and its mappings (an skb of a
 * send(MSG_ZEROCOPY) from the mapping, say): the slot is kept like a lent
 * one. others: the references it had beyond the ring's and the PTEs'
 * when it was judged; maps: those PTEs.
 */
TRACE_EVENT(zcdev_slot_kept,
	    TP_PROTO(unsigned int slot, int others, int maps, u32 ring),
	    TP_ARGS(slot, others, maps, ring),
	    TP_STRUCT__entry(__field(unsigned int, slot)
			     __field(int, others)
			     __field(int, maps)
			     __field(u32, ring)),
	    TP_fast_assign(__entry->slot = slot;
			   __entry->others = others;
			   __entry->maps = maps;
			   __entry->ring = ring;),
	    TP_printk("slot=%u others=%d maps=%d ring=%u", __entry->slot,
		      __entry->others, __entry->maps, __entry->ring));

/* A resize or a reset: every mapping was zapped. */
TRACE_EVENT(zcdev_resize,
	    TP_PROTO(u32 old_pages, u32 new_pages, u64 generation, u32 ring),
	    TP_ARGS(old_pages, new_pages, generation, ring),
	    TP_STRUCT__entry(__field(u32, old_pages)
			     __field(u32, new_pages)
			     __field(u64, generation)
			     __field(u32, ring)),
	    TP_fast_assign(__entry->old_pages = old_pages;
			   __entry->new_pages = new_pages;
			   __entry->generation = generation;
			   __entry->ring = ring;),
	    TP_printk("pages=%u->%u generation=%llu ring=%u",
		      __entry->old_pages, __entry->new_pages,
		      __entry->generation, __entry->ring));

#endif /* _ZCDEV_TRACE_H */

#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE trace
#include <trace/define_trace.h>
