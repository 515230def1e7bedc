/* call_all: loads a PKCS#11 module as a C host does (dlopen RTLD_NOW | RTLD_LOCAL) and
 * calls every function of its list once, in the specification's order, printing
 * "NAME 0xRV" per call. C_Initialize comes first (with NULL); every other call gets
 * well-formed arguments: valid pointers to zeroed buffers, slot 0, handle 1.
 *
 *   call_all MODULE_PATH
 *
 * tests/test_embedding.py uses it to show that a module whose engine cannot start
 * answers every call with an error, never a silent CKR_OK.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "../../csrc/pkcs11.h"

#define CKM_SHA256 0x250UL
#define CKF_SERIAL_SESSION 0x4UL
#define CKF_DONT_BLOCK 0x1UL

typedef CK_RV (*get_list_fn)(CK_FUNCTION_LIST_PTR *);

static union { CK_BYTE b[4096]; CK_ULONG u[512]; } s1, s2, s3;

static void show(const char *name, CK_RV rv)
{
    printf("%s 0x%lx\n", name, rv);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODULE_PATH\n", argv[0]);
        return 2;
    }
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        printf("dlopen failed: %s\n", dlerror());
        return 1;
    }
    get_list_fn get = (get_list_fn)dlsym(h, "C_GetFunctionList");
    CK_FUNCTION_LIST_PTR f = NULL;
    if (get == NULL || get(&f) != 0 || f == NULL) {
        printf("C_GetFunctionList failed\n");
        return 1;
    }
    show("C_GetFunctionList", 0);

    CK_MECHANISM m = {CKM_SHA256, NULL, 0};
    CK_ATTRIBUTE t = {0, s3.b, 8};
    CK_UTF8CHAR label[32];
    memset(label, ' ', sizeof label);
    CK_BYTE_PTR b = s1.b, pin = (CK_BYTE_PTR)"12345678";
    CK_ULONG *n = s2.u;
    s2.u[0] = 64;

    show("C_Initialize", f->C_Initialize(NULL));
    show("C_GetInfo", f->C_GetInfo((CK_INFO *)b));
    show("C_GetSlotList", f->C_GetSlotList(0, (CK_SLOT_ID_PTR)b, n));
    show("C_GetSlotInfo", f->C_GetSlotInfo(0, (CK_SLOT_INFO *)b));
    show("C_GetTokenInfo", f->C_GetTokenInfo(0, (CK_TOKEN_INFO *)b));
    show("C_GetMechanismList", f->C_GetMechanismList(0, (CK_MECHANISM_TYPE_PTR)b, n));
    show("C_GetMechanismInfo", f->C_GetMechanismInfo(0, CKM_SHA256, (CK_MECHANISM_INFO *)b));
    show("C_InitToken", f->C_InitToken(0, pin, 8, label));
    show("C_InitPIN", f->C_InitPIN(1, pin, 8));
    show("C_SetPIN", f->C_SetPIN(1, pin, 8, pin, 8));
    show("C_OpenSession", f->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, (CK_SESSION_HANDLE_PTR)b));
    show("C_CloseSession", f->C_CloseSession(1));
    show("C_CloseAllSessions", f->C_CloseAllSessions(0));
    show("C_GetSessionInfo", f->C_GetSessionInfo(1, (CK_SESSION_INFO *)b));
    s2.u[0] = 64;
    show("C_GetOperationState", f->C_GetOperationState(1, b, n));
    show("C_SetOperationState", f->C_SetOperationState(1, b, 16, 0, 0));
    show("C_Login", f->C_Login(1, 1, pin, 8));
    show("C_Logout", f->C_Logout(1));
    show("C_CreateObject", f->C_CreateObject(1, &t, 1, (CK_OBJECT_HANDLE_PTR)b));
    show("C_CopyObject", f->C_CopyObject(1, 1, &t, 1, (CK_OBJECT_HANDLE_PTR)b));
    show("C_DestroyObject", f->C_DestroyObject(1, 1));
    show("C_GetObjectSize", f->C_GetObjectSize(1, 1, n));
    show("C_GetAttributeValue", f->C_GetAttributeValue(1, 1, &t, 1));
    show("C_SetAttributeValue", f->C_SetAttributeValue(1, 1, &t, 1));
    show("C_FindObjectsInit", f->C_FindObjectsInit(1, &t, 1));
    show("C_FindObjects", f->C_FindObjects(1, (CK_OBJECT_HANDLE_PTR)b, 4, n));
    show("C_FindObjectsFinal", f->C_FindObjectsFinal(1));
    s2.u[0] = 64;
    show("C_EncryptInit", f->C_EncryptInit(1, &m, 1));
    show("C_Encrypt", f->C_Encrypt(1, s3.b, 16, b, n));
    show("C_EncryptUpdate", f->C_EncryptUpdate(1, s3.b, 16, b, n));
    show("C_EncryptFinal", f->C_EncryptFinal(1, b, n));
    show("C_DecryptInit", f->C_DecryptInit(1, &m, 1));
    show("C_Decrypt", f->C_Decrypt(1, s3.b, 16, b, n));
    show("C_DecryptUpdate", f->C_DecryptUpdate(1, s3.b, 16, b, n));
    show("C_DecryptFinal", f->C_DecryptFinal(1, b, n));
    show("C_DigestInit", f->C_DigestInit(1, &m));
    show("C_Digest", f->C_Digest(1, s3.b, 16, b, n));
    show("C_DigestUpdate", f->C_DigestUpdate(1, s3.b, 16));
    show("C_DigestKey", f->C_DigestKey(1, 1));
    show("C_DigestFinal", f->C_DigestFinal(1, b, n));
    show("C_SignInit", f->C_SignInit(1, &m, 1));
    show("C_Sign", f->C_Sign(1, s3.b, 16, b, n));
    show("C_SignUpdate", f->C_SignUpdate(1, s3.b, 16));
    show("C_SignFinal", f->C_SignFinal(1, b, n));
    show("C_SignRecoverInit", f->C_SignRecoverInit(1, &m, 1));
    show("C_SignRecover", f->C_SignRecover(1, s3.b, 16, b, n));
    show("C_VerifyInit", f->C_VerifyInit(1, &m, 1));
    show("C_Verify", f->C_Verify(1, s3.b, 16, s3.b, 16));
    show("C_VerifyUpdate", f->C_VerifyUpdate(1, s3.b, 16));
    show("C_VerifyFinal", f->C_VerifyFinal(1, s3.b, 16));
    show("C_VerifyRecoverInit", f->C_VerifyRecoverInit(1, &m, 1));
    show("C_VerifyRecover", f->C_VerifyRecover(1, s3.b, 16, b, n));
    show("C_DigestEncryptUpdate", f->C_DigestEncryptUpdate(1, s3.b, 16, b, n));
    show("C_DecryptDigestUpdate", f->C_DecryptDigestUpdate(1, s3.b, 16, b, n));
    show("C_SignEncryptUpdate", f->C_SignEncryptUpdate(1, s3.b, 16, b, n));
    show("C_DecryptVerifyUpdate", f->C_DecryptVerifyUpdate(1, s3.b, 16, b, n));
    CK_OBJECT_HANDLE_PTR o = (CK_OBJECT_HANDLE_PTR)b, o2 = (CK_OBJECT_HANDLE_PTR)(b + 8);
    show("C_GenerateKey", f->C_GenerateKey(1, &m, &t, 1, o));
    show("C_GenerateKeyPair", f->C_GenerateKeyPair(1, &m, &t, 1, &t, 1, o, o2));
    s2.u[0] = 64;
    show("C_WrapKey", f->C_WrapKey(1, &m, 1, 2, b, n));
    show("C_UnwrapKey", f->C_UnwrapKey(1, &m, 1, s3.b, 16, &t, 1, o));
    show("C_DeriveKey", f->C_DeriveKey(1, &m, 1, &t, 1, o));
    show("C_SeedRandom", f->C_SeedRandom(1, s3.b, 16));
    show("C_GenerateRandom", f->C_GenerateRandom(1, b, 16));
    show("C_GetFunctionStatus", f->C_GetFunctionStatus(1));
    show("C_CancelFunction", f->C_CancelFunction(1));
    show("C_WaitForSlotEvent", f->C_WaitForSlotEvent(CKF_DONT_BLOCK, (CK_SLOT_ID_PTR)b, NULL));
    show("C_Finalize", f->C_Finalize(NULL));
    return 0;
}
