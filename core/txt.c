/*
 * txt.c - the `_mta-sts` TXT record of RFC 8461 §3.1: a strict parser of one record and the
 * RRset rule (records not starting with v=STSv1 dropped, exactly one must remain).
 *
 *   sts-text-record = sts-version 1*(sts-field-delim sts-field) [sts-field-delim]
 *   sts-version     = %s"v=STSv1"
 *   sts-field-delim = *WSP ";" *WSP                       (erratum 6285: space before ';' is fine)
 *   sts-field       = sts-id / sts-extension
 *   sts-id          = %s"id=" 1*32(ALPHA / DIGIT)
 *   sts-extension   = sts-ext-name "=" sts-ext-value
 *   sts-ext-name    = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
 *   sts-ext-value   = 1*(%x21-3A / %x3C / %x3E-7E)
 *
 * A field named exactly "id" must be a valid sts-id (it is not read as an extension); the first
 * id wins, later ones are checked and ignored. Reasons are static strings. See docs/parsing.md.
 */
#include <stdbool.h>
#include <string.h>
#include "mtasts/txt.h"

#define VERSION_TOKEN "v=STSv1"
#define VERSION_LEN (sizeof(VERSION_TOKEN) - 1)
#define ID_LEN_MAX (MTASTS_ID_MAX - 1)
#define EXT_NAME_MAX 32

static inline bool is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

static inline bool is_alnum(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static inline bool is_ext_name_char(unsigned char c)
{
	return is_alnum(c) || c == '_' || c == '-' || c == '.';
}

static inline bool is_ext_value_char(unsigned char c)
{
	return c >= 0x21 && c <= 0x7e && c != ';' && c != '=';
}

/* The prefix filter of §3.1: "v=STSv1" followed by the end, WSP or ';'. */
static bool has_sts_prefix(const char *record, size_t len)
{
	if (len < VERSION_LEN || memcmp(record, VERSION_TOKEN, VERSION_LEN) != 0)
		return false;
	return len == VERSION_LEN || record[VERSION_LEN] == ';' || is_wsp((unsigned char)record[VERSION_LEN]);
}

static void set_why(const char **why, const char *reason)
{
	if (why)
		*why = reason;
}

/*
 * One field starting at *pos; on success *pos is just past it. Sets *got_id and copies the id
 * into id_out when it is the first id.
 */
static mtasts_status parse_field(const char *s, size_t len, size_t *pos, bool *got_id,
                                 char id_out[MTASTS_ID_MAX], const char **why)
{
	size_t p = *pos, name_start = p, name_len, value_start;

	if (!is_alnum((unsigned char)s[p])) {
		set_why(why, s[p] == ';' ? "empty field between two ';'"
		                         : "field name must start with a letter or digit");
		return MTASTS_ERR_SYNTAX;
	}
	while (p < len && is_ext_name_char((unsigned char)s[p]))
		p++;
	name_len = p - name_start;
	if (p == len || s[p] != '=') {
		set_why(why, p < len && is_wsp((unsigned char)s[p]) ? "whitespace around '=' in a field"
		             : "field name followed by something other than '='");
		return MTASTS_ERR_SYNTAX;
	}
	if (name_len > EXT_NAME_MAX) {
		set_why(why, "field name longer than 32 characters");
		return MTASTS_ERR_SYNTAX;
	}
	p++;
	value_start = p;

	if (name_len == 2 && memcmp(s + name_start, "id", 2) == 0) {
		while (p < len && is_alnum((unsigned char)s[p]))
			p++;
		if (p == value_start) {
			set_why(why, p < len && is_wsp((unsigned char)s[p]) ? "whitespace around '=' in id"
			             : "empty id");
			return MTASTS_ERR_SYNTAX;
		}
		if (p < len && s[p] != ';' && !is_wsp((unsigned char)s[p])) {
			set_why(why, "id may hold only letters and digits");
			return MTASTS_ERR_SYNTAX;
		}
		if (p - value_start > ID_LEN_MAX) {
			set_why(why, "id longer than 32 characters");
			return MTASTS_ERR_SYNTAX;
		}
		if (!*got_id) {
			memcpy(id_out, s + value_start, p - value_start);
			id_out[p - value_start] = '\0';
			*got_id = true;
		}
	} else {
		while (p < len && is_ext_value_char((unsigned char)s[p]))
			p++;
		if (p == value_start) {
			set_why(why, p == len || s[p] == ';' ? "empty extension value"
			             : is_wsp((unsigned char)s[p]) ? "whitespace around '=' in a field"
			             : s[p] == '=' ? "'=' inside an extension value"
			             : "control or non-ASCII character in an extension value");
			return MTASTS_ERR_SYNTAX;
		}
		if (p < len && s[p] != ';' && !is_wsp((unsigned char)s[p])) {
			set_why(why, s[p] == '=' ? "'=' inside an extension value"
			             : "control or non-ASCII character in an extension value");
			return MTASTS_ERR_SYNTAX;
		}
	}
	*pos = p;
	return MTASTS_OK;
}

mtasts_status mtasts_txt_parse(const char *record, size_t len, char id_out[MTASTS_ID_MAX],
                               const char **why)
{
	mtasts_status status = MTASTS_ERR_SYNTAX;
	size_t p, fields = 0;
	bool got_id = false;

	set_why(why, NULL);
	if (!id_out || (!record && len))
		return MTASTS_ERR_INVALID_ARG;
	id_out[0] = '\0';
	if (len == 0) {
		set_why(why, "empty record");
		goto out;
	}
	if (memchr(record, '\0', len)) {
		set_why(why, "NUL byte in record");
		goto out;
	}
	if (len < VERSION_LEN || memcmp(record, VERSION_TOKEN, VERSION_LEN) != 0) {
		set_why(why, "record does not begin with v=STSv1 (case-sensitive, no spaces)");
		goto out;
	}
	p = VERSION_LEN;
	if (p < len && record[p] != ';' && !is_wsp((unsigned char)record[p])) {
		set_why(why, "version is not exactly v=STSv1");
		goto out;
	}

	for (;;) {
		/* sts-field-delim, or the end */
		while (p < len && is_wsp((unsigned char)record[p]))
			p++;
		if (p == len) {
			if (fields == 0) {
				set_why(why, "no field after v=STSv1");
				goto out;
			}
			break;
		}
		if (record[p] != ';') {
			set_why(why, "fields must be separated by ';'");
			goto out;
		}
		p++;
		while (p < len && is_wsp((unsigned char)record[p]))
			p++;
		if (p == len) {
			if (fields == 0) {
				set_why(why, "no field after v=STSv1");
				goto out;
			}
			break;   /* optional trailing delimiter */
		}
		status = parse_field(record, len, &p, &got_id, id_out, why);
		if (status)
			goto out;
		status = MTASTS_ERR_SYNTAX;
		fields++;
	}
	if (!got_id) {
		set_why(why, "no id field");
		goto out;
	}
	status = MTASTS_OK;
out:
	if (status)
		id_out[0] = '\0';
	return status;
}

mtasts_status mtasts_txt_select(const char *const *records, const size_t *lens, size_t n,
                                char id_out[MTASTS_ID_MAX], const char **why)
{
	size_t found = 0, which = 0;

	set_why(why, NULL);
	if (!id_out || (!records && n))
		return MTASTS_ERR_INVALID_ARG;
	id_out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		size_t len;

		if (!records[i])
			return MTASTS_ERR_INVALID_ARG;
		len = lens ? lens[i] : strlen(records[i]);
		if (!has_sts_prefix(records[i], len))
			continue;
		if (++found > 1) {
			set_why(why, "more than one TXT record begins with v=STSv1");
			return MTASTS_ERR_MULTIPLE;
		}
		which = i;
	}
	if (found == 0) {
		set_why(why, "no TXT record begins with v=STSv1");
		return MTASTS_ERR_NOT_FOUND;
	}
	return mtasts_txt_parse(records[which], lens ? lens[which] : strlen(records[which]), id_out,
	                        why);
}
