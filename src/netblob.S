/* The network module, embedded (see include/netmod.h). */
	.section .rodata
	.balign 64
	.globl postie_netmod_blob
	.type postie_netmod_blob, @object
postie_netmod_blob:
	.incbin NETMOD_PATH
	.globl postie_netmod_blob_end
postie_netmod_blob_end:
	.section .note.GNU-stack,"",@progbits
