/* The case of with-libvirt-after.c, run by with-libvirt.c. */
#ifndef WITH_LIBVIRT_H
#define WITH_LIBVIRT_H
void libvirt_header_after_this_one(void);
#endif
