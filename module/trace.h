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

/* Every event says which ring: 0 is /dev/zcdev, N is /dev/zcdevN. */
DECLARE_EVENT_CLASS(zcdev_xfer,
		    TP_PROTO(u32 ring, u64 bytes, u32 pages_moved,
			     u64 bytes_copied),
		    TP_ARGS(ring, bytes, pages_moved, bytes_copied),
		    TP_STRUCT__entry(__field(u32, ring)
				     __field(u64, bytes)
				     __field(u32, pages_moved)
				     __field(u64, bytes_copied)),
		    TP_fast_assign(__entry->ring = ring;
				   __entry->bytes = bytes;
				   __entry->pages_moved = pages_moved;
				   __entry->bytes_copied = bytes_copied;),
		    TP_printk("ring=%u bytes=%llu pages_moved=%u bytes_copied=%llu",
			      __entry->ring, __entry->bytes,
			      __entry->pages_moved, __entry->bytes_copied));

#define ZCDEV_XFER_EVENT(name)						\
	DEFINE_EVENT(zcdev_xfer, zcdev_xfer_##name,			\
		     TP_PROTO(u32 ring, u64 bytes, u32 pages_moved,	\
			      u64 bytes_copied),			\
		     TP_ARGS(ring, bytes, pages_moved, bytes_copied))

ZCDEV_XFER_EVENT(write);
ZCDEV_XFER_EVENT(read);
ZCDEV_XFER_EVENT(produce);
ZCDEV_XFER_EVENT(consume);
ZCDEV_XFER_EVENT(splice_out);
ZCDEV_XFER_EVENT(splice_in);

/* A slot got a fresh page because a pipe still held the old one. */
TRACE_EVENT(zcdev_page_swap,
	    TP_PROTO(u32 ring, unsigned int slot, int other_refs),
	    TP_ARGS(ring, slot, other_refs),
	    TP_STRUCT__entry(__field(u32, ring)
			     __field(unsigned int, slot)
			     __field(int, other_refs)),
	    TP_fast_assign(__entry->ring = ring;
			   __entry->slot = slot;
			   __entry->other_refs = other_refs;),
	    TP_printk("ring=%u slot=%u other_refs=%d", __entry->ring,
		      __entry->slot, __entry->other_refs));

/* A resize or a reset: every mapping was zapped. */
TRACE_EVENT(zcdev_resize,
	    TP_PROTO(u32 ring, u32 old_pages, u32 new_pages, u64 generation),
	    TP_ARGS(ring, old_pages, new_pages, generation),
	    TP_STRUCT__entry(__field(u32, ring)
			     __field(u32, old_pages)
			     __field(u32, new_pages)
			     __field(u64, generation)),
	    TP_fast_assign(__entry->ring = ring;
			   __entry->old_pages = old_pages;
			   __entry->new_pages = new_pages;
			   __entry->generation = generation;),
	    TP_printk("ring=%u pages=%u->%u generation=%llu", __entry->ring,
		      __entry->old_pages, __entry->new_pages,
		      __entry->generation));

#endif /* _ZCDEV_TRACE_H */

#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE trace
#include <trace/define_trace.h>
