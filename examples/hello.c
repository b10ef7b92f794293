/* SPDX-License-Identifier: BSD-3-Clause */
/* hello.c - the README's example: one stream, a subscriber, a fork and a tap. */
#include <fanout/fanout.h>
#include <stdio.h>

int main(void)
{
	static int events[5] = {10, 20, 30, 40, 50};
	fo_stream *s;
	fo_cursor *sub, *late, *tap;
	void *it;

	fo_stream_create(&s, NULL);            /* unbounded, no destructor */
	fo_stream_cursor(s, &sub, FO_ACTIVE);  /* lossless subscriber */
	fo_cursor_fork(sub, &tap, FO_PASSIVE); /* stats tap: never slows pushes */
	for (int i = 0; i < 5; i++)
		fo_stream_push(s, &events[i]);
	fo_stream_close(s); /* readers see FO_END after all */

	fo_cursor_next(sub, &it);              /* sub takes 10 ...            */
	fo_cursor_fork(sub, &late, FO_ACTIVE); /* ... a fork starts right here */
	while (fo_cursor_next(late, &it) == FO_OK)
		printf("late got %d\n", *(int *)it);              /* 20 30 40 50 */
	printf("tap sees %zu ready\n", fo_cursor_available(tap)); /* 5 */

	fo_cursor_close(sub), fo_cursor_close(late), fo_cursor_close(tap);
	fo_stream_destroy(s);
	return 0;
}
