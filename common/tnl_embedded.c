/*
 * Lookup in an embedded file table (see tnl_embedded.h).
 */

#include <string.h>

#include "tnl_embedded.h"


const char *
tnl_embedded_find(const tnl_embedded_t *files, const char *name)
{
    for ( /* void */ ; files->name != NULL; files++) {
        if (strcmp(files->name, name) == 0) {
            return files->text;
        }
    }

    return NULL;
}
